"""Solve Darcy flow for every coefficient in a netCDF file on a dask.distributed cluster.

Run: ``python examples/batch_distributed.py [--address HOST:PORT] [--workers N]``.

Without ``--address`` it starts a ``LocalCluster`` of ``--workers`` processes
on this machine. On a real cluster, start a scheduler and workers first
(every worker needs opflow installed and the input file at the same path,
e.g. on a shared file system)::

    dask scheduler                         # on the head node, prints tcp://HOST:8786
    dask worker tcp://HOST:8786 --nthreads 1 --nworkers 8   # on every compute node
    python examples/batch_distributed.py --address tcp://HOST:8786

or, from the shell, the same job as one command::

    opflow solve darcy --data coeff.nc --vars a --out u.nc --chunk 8 --address tcp://HOST:8786

Workers read their chunks from the file and solve them; the driver writes
finished chunks in order to ``.u.nc.parts/`` and renames the complete file
to ``u.nc``. Kill the driver (Ctrl-C, SIGKILL, a lost node) and run the same
command again: it continues from the finished chunks and writes the same file.
"""

import argparse
import tempfile
import time
from pathlib import Path

import xarray as xr

from opflow.batch import solve_file
from opflow.data import generate


def main(address=None, workers=2, n=32, resolution=33, chunk=4):
    folder = Path(tempfile.mkdtemp(prefix="opflow_batch_"))
    data = folder / "coeff.nc"
    # The inputs: n Darcy coefficients (with the reference solutions u, which
    # the batch job does not read; they check it below).
    generate("darcy", n=n, resolution=resolution, out=data, chunk=16, progress=False).close()
    start = time.perf_counter()
    out = solve_file("darcy", data, folder / "u.nc", var="a", chunk=chunk,
                     scheduler="distributed", workers=workers, address=address,
                     progress=True)
    seconds = time.perf_counter() - start
    with xr.open_dataset(out) as got, xr.open_dataset(data) as ref:
        diff = float(abs(got["u"] - ref["u"]).max() / abs(ref["u"]).max())
        print(f"solved {n} samples at {resolution}^2 in {seconds:.1f} s on "
              f"{'the cluster at ' + address if address else f'{workers} local workers'}; "
              f"max relative difference from the generated data: {diff:.1e}")
        print(f"output {out} with attrs: {sorted(got.attrs)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="HOST:PORT of a running dask scheduler")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster workers")
    args = parser.parse_args()
    main(args.address, args.workers)
