"""Threads waiting inside a stand-in for psycopg's `Cursor.execute`, as
they would while the server runs their query: pydx reads the SQL from the
driver's frame and charges it to the program's line that made the call."""
import os
import sys
import tempfile
import threading
import time

DRIVER = '''
import time


class Cursor:
    def execute(self, query, params=None, *, prepare=None):
        time.sleep(3600)
'''

package = os.path.join(tempfile.mkdtemp(), "psycopg")
os.mkdir(package)
with open(os.path.join(package, "__init__.py"), "w"):
    pass
with open(os.path.join(package, "cursor.py"), "w") as driver:
    driver.write(DRIVER)
sys.path.insert(0, os.path.dirname(package))

from psycopg.cursor import Cursor  # noqa: E402

WIDE = "SELECT " + ", ".join(f"column_{n}" for n in range(100)) + " FROM wide"


def report(cursor):
    cursor.execute(WIDE, (1,))  # LINE:wide


def lookup(cursor, email):
    cursor.execute("SELECT id FROM users WHERE email = %s", (email,))  # LINE:lookup


def raw(cursor):
    cursor.execute(b"SELECT 1")  # LINE:bytes


for target, args in [
    (report, ()),
    (lookup, ("ana@example.com",)),
    (lookup, ("bo@example.com",)),
    (raw, ()),
]:
    threading.Thread(target=target, args=(Cursor(), *args), daemon=True).start()
print("ready", flush=True)
time.sleep(3600)
