"""Graph building and executor overhead (issue 17): a script, never a test.

* building a 501-layer graph (125 residual blocks) with addLayers/connectLayers, the
  dlnetwork, and analyzeNetwork: MATLAB users expect well under a second;
* the executor's own cost per layer on BENCHMARKS N2 (the digit network, 1 observation):
  predict(net) minus the layers' own calls, medians of interleaved runs.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/graph_build.py
"""
import contextlib
import io
import time

import numpy as np

import mlayers as ml


def big_graph(blocks):
    g = ml.layerGraph([ml.featureInputLayer(8, Name="in")])
    prev = "in"
    for b in range(blocks):
        g = ml.addLayers(g, [ml.fullyConnectedLayer(8, Name=f"fc{b}"), ml.reluLayer(Name=f"r{b}"),
                             ml.fullyConnectedLayer(8, Name=f"g{b}"),
                             ml.additionLayer(2, Name=f"add{b}")])
        g = ml.connectLayers(g, prev, f"fc{b}")
        g = ml.connectLayers(g, prev, f"add{b}/in2")
        prev = f"add{b}"
    return g


def digit_network():
    layers = [ml.imageInputLayer([28, 28, 1])]
    for k, f in enumerate((8, 16, 32)):
        layers += [ml.convolution2dLayer(3, f, Padding="same"), ml.batchNormalizationLayer(),
                   ml.reluLayer()]
        if k < 2:
            layers.append(ml.maxPooling2dLayer(2, Stride=2))
    return layers + [ml.fullyConnectedLayer(10), ml.softmaxLayer()]


def median_ms(fn, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main():
    ml.rng(0)
    parts = {}
    for _ in range(5):
        t0 = time.perf_counter()
        g = big_graph(125)
        t1 = time.perf_counter()
        net = ml.dlnetwork(g)
        t2 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            ml.analyzeNetwork(net)
        t3 = time.perf_counter()
        for k, v in (("build", t1 - t0), ("dlnetwork", t2 - t1), ("analyze", t3 - t2)):
            parts.setdefault(k, []).append(1e3 * v)
    print(f"501-layer graph ({len(g.Connections)} connections), median of 5:")
    for k, v in parts.items():
        print(f"  {k:10s} {np.median(v):8.1f} ms")

    net = ml.dlnetwork(digit_network())
    X = ml.dlarray(np.random.default_rng(0).random((28, 28, 1, 1)).astype(np.float32), "SSCB")

    def by_hand():
        h = X
        for layer in net.Layers:
            h = layer._forward(h, "predict")
        return h
    whole, bare = [], []
    for _ in range(20):                       # interleaved
        whole.append(median_ms(lambda: ml.predict(net, X), 50))
        bare.append(median_ms(by_hand, 50))
    w, b = np.median(whole), np.median(bare)
    print(f"N2 predict {w:.3f} ms, layers called by hand {b:.3f} ms, executor overhead "
          f"{1e3 * (w - b) / len(net.Layers):.2f} us per layer")


if __name__ == "__main__":
    main()
