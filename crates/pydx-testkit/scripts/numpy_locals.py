"""A frame whose locals are NumPy scalars, alone and in a list."""
import time

import numpy as np


def show():
    small = np.int8(-5)
    wide = np.uint64(2**64 - 1)
    ratio = np.float64(0.25)
    single = np.float32(1.5)
    half = np.float16(-2.0)
    yes = np.bool_(True)
    pair = [np.int32(7), np.int32(-7)]
    print("ready", flush=True)
    time.sleep(3600)


show()
