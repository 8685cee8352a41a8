"""NumPy's compiled kernels at work: a sort and a matrix product, for ever."""
import numpy as np

rng = np.random.default_rng(0)
values = rng.random(2_000_000)
matrix = rng.random((600, 600))

print("ready", flush=True)
while True:
    np.sort(values)  # LINE:sort
    matrix @ matrix  # LINE:matmul
