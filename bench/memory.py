"""Extra memory of a predict call beyond its output, and whether repeated calls grow it.

    python bench/memory.py [--cases T1,G1,G3,C3] [--dtype float32] [--reps 20]

Each case runs in a fresh process (Linux): build the layer and the (Fortran-ordered)
input, run predict once to initialise the weights, reset the process's peak RSS, run
predict again and report ``peak - resident before - output bytes``; then run ``--reps``
more calls and report how much the resident size moved.  The bound is stated in
docs/engine.md (one work area per thread).
"""
import argparse
import json
import os
import subprocess
import sys

CASES = {
    # id: (constructor call, input size, format)
    "T1": ("ml.transposedConv1dLayer(11, 96, Stride=4)", (1024, 64, 16), "SCB"),
    "G1": ('ml.groupedConvolution2dLayer(3, 64, 2, Padding="same")', (56, 56, 128, 8), "SSCB"),
    "G2": ('ml.groupedConvolution2dLayer(3, 1, "channel-wise", Stride=2, Padding="same")',
           (56, 56, 128, 8), "SSCB"),
    "G3": ('ml.groupedConvolution2dLayer(11, 10, "channel-wise")', (227, 227, 3, 4), "SSCB"),
    "C1": ("ml.convolution2dLayer(3, 64, Padding=1)", (56, 56, 64, 8), "SSCB"),
    "C2": ("ml.convolution1dLayer(5, 128, DilationFactor=2)", (2048, 64, 16), "SCB"),
    "C3": ("ml.convolution3dLayer(3, 32, Padding=1)", (32, 32, 32, 16, 2), "SSSCB"),
    "U1": ("ml.transposedConv2dLayer(4, 32, Stride=2, Cropping=1)", (28, 28, 64, 16), "SSCB"),
}

CHILD = r"""
import json, resource, sys
import numpy as np
import mlayers as ml

call, size, fmt, dtype, reps = json.loads(sys.argv[1])

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20

def peak_mib():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024

def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:   # "5" resets the peak RSS (Linux)
        f.write("5")

layer = eval(call)
x = np.asfortranarray(np.random.default_rng(0).standard_normal(size), dtype=dtype)
X = ml.dlarray(x, fmt)
Y = ml.predict(layer, X)            # initialises the weights
out_mib = Y.data.nbytes / 2**20
del Y
reset_peak()
before = rss_mib()
Y = ml.predict(layer, X)
extra = peak_mib() - before
del Y
rss0 = rss_mib()
for _ in range(reps):
    Y = ml.predict(layer, X)
    del Y
print(json.dumps(dict(out_mib=out_mib, in_mib=x.nbytes / 2**20, peak_increase_mib=extra,
                      extra_mib=max(extra - out_mib, 0.0), rss_growth_mib=rss_mib() - rss0,
                      threads=ml.get_num_threads())))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    print(f"{'case':4}  {'input MiB':>9}  {'output MiB':>10}  {'peak rise':>9}  "
          f"{'extra MiB':>9}  {'RSS growth over reps':>20}")
    for cid in args.cases.split(","):
        call, size, fmt = CASES[cid]
        res = subprocess.run([sys.executable, "-c", CHILD,
                              json.dumps([call, size, fmt, args.dtype, args.reps])],
                             capture_output=True, text=True,
                             # a fixed threshold stops glibc from keeping freed large
                             # blocks resident, which would hide what a call allocates
                             env=dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072"))
        if res.returncode:
            print(f"{cid}: failed\n{res.stderr}")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"{cid:4}  {r['in_mib']:9.1f}  {r['out_mib']:10.1f}  "
              f"{r['peak_increase_mib']:9.1f}  {r['extra_mib']:9.1f}  "
              f"{r['rss_growth_mib']:17.1f} MiB")


if __name__ == "__main__":
    main()
