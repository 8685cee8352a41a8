"""A parent process and the child it forks, each burning CPU in a function
of its own: `parent_work` in the parent, `child_work` in the child.

Usage: parent_and_child.py SECONDS
"""
import os
import sys
import time


def parent_work():
    total = 0
    for i in range(20_000):
        total += i
    return total


def child_work():
    total = 0
    for i in range(20_000):
        total += i
    return total


def burn(work, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        work()


def main(seconds):
    child = os.fork()
    if child == 0:
        burn(child_work, seconds)
        os._exit(0)
    burn(parent_work, seconds)
    os.waitpid(child, 0)


main(float(sys.argv[1]))
