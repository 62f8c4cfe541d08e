"""Time Series Forecasting Using Deep Learning (MathWorks example), in mlayers.

An LSTM network learns to predict the next time step of multichannel waveforms; it then
forecasts closed loop: each prediction is fed back as the next input, with the network
state carried between calls.  The MathWorks example uses its WaveformData set (sums of
sinusoids); here the waveforms are generated the same way (three channels of random
mixtures of two sinusoids with noise).

Training runs as a custom training loop (``dlnetwork``, ``dlfeval``, ``mse``,
``adamupdate``): ``trainNetwork`` of this package does not yet take sequence-to-sequence
responses (cell arrays of ``R x T`` targets).  Closed-loop forecasting uses the
``dlnetwork`` form of stateful prediction, ``[Y, state] = predict(net, X)`` and
``net.State = state`` (the SeriesNetwork form is ``[net, Y] = predictAndUpdateState(net,
X)``, which ``ml.predictAndUpdateState`` provides for trained networks).

MATLAB::

    layers = [sequenceInputLayer(numChannels)
              lstmLayer(128)
              fullyConnectedLayer(numChannels)];
    net = dlnetwork(layers);
    ...  % custom loop: [loss,gradients] = dlfeval(@modelLoss,net,X,T);
         %              [net,avg,avgSq] = adamupdate(net,gradients,avg,avgSq,iteration);
    net = resetState(net);
    [Z,state] = predict(net,X(:,1:offset));   net.State = state;
    Xt = Z(:,end);
    for t = 2:numPredictionTimeSteps
        [Xt,state] = predict(net,Xt);  net.State = state;
        Y(:,t) = Xt;
    end

Run ``python examples/time_series_forecasting.py`` (``--small`` or
``MLAYERS_EXAMPLE_SMALL=1`` for a quick run).
"""
import argparse
import os

import numpy as np

import mlayers as ml


def make_waveforms(num_sequences, length, channels=3, seed=0):
    """Sums of two sinusoids per channel with random frequencies and phases, plus noise:
    a list of ``channels x length`` float32 arrays (MATLAB's cell array of sequences)."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    data = []
    for _ in range(num_sequences):
        f = rng.uniform(0.01, 0.06, size=(channels, 2))
        p = rng.uniform(0, 2 * np.pi, size=(channels, 2))
        a = rng.uniform(0.5, 1.0, size=(channels, 2))
        x = sum(a[:, k:k + 1] * np.sin(2 * np.pi * f[:, k:k + 1] * t + p[:, k:k + 1])
                for k in range(2))
        data.append((x + 0.02 * rng.standard_normal(x.shape)).astype(np.float32))
    return data


def model_loss(net, X, T):
    Y = ml.forward(net, X)
    loss = ml.mse(Y, T)
    return loss, ml.dlgradient(loss, net.Learnables)


def train(data, num_hidden, num_epochs, learn_rate=0.01, seed=0, verbose=True):
    """Train on predicting step t+1 from steps 1..t of every sequence (one mini-batch of
    all sequences per iteration).  Returns (net, mu, sigma, losses)."""
    ml.rng(seed)
    C = data[0].shape[0]
    mu = np.mean(np.concatenate(data, axis=1), axis=1, keepdims=True)
    sigma = np.std(np.concatenate(data, axis=1), axis=1, keepdims=True)
    norm = [(x - mu) / sigma for x in data]
    X = ml.dlarray(ml.pad_sequences([x[:, :-1] for x in norm]), "CBT")
    T = ml.dlarray(ml.pad_sequences([x[:, 1:] for x in norm]), "CBT")
    layers = [ml.sequenceInputLayer(C), ml.lstmLayer(num_hidden),
              ml.fullyConnectedLayer(C)]
    net = ml.dlnetwork(layers)
    avg, avg_sq = [], []
    losses = []
    for iteration in range(1, num_epochs + 1):
        loss, gradients = ml.dlfeval(model_loss, net, X, T)
        net, avg, avg_sq = ml.adamupdate(net, gradients, avg, avg_sq, iteration, learn_rate)
        losses.append(float(ml.extractdata(loss)))
        if verbose and (iteration % 50 == 0 or iteration == 1):
            print(f"iteration {iteration:4d}  loss {losses[-1]:.5f}")
    return net, mu.astype(np.float32), sigma.astype(np.float32), losses


def forecast_closed_loop(net, x, offset, steps):
    """Warm the state up on the first ``offset`` steps of the normalized sequence ``x``,
    then feed every prediction back as the next input for ``steps`` steps."""
    net = ml.resetState(net)
    Z, state = ml.predict(net, ml.dlarray(x[:, :offset], "CT"), nargout=2)
    net.State = state
    Y = np.zeros((x.shape[0], steps), dtype=np.float32)
    xt = ml.extractdata(Z)[:, -1:]
    Y[:, :1] = xt
    for t in range(1, steps):
        Zt, state = ml.predict(net, ml.dlarray(xt, "CT"), nargout=2)
        net.State = state
        xt = ml.extractdata(Zt)
        Y[:, t:t + 1] = xt
    return Y


def main(num_sequences=40, length=200, num_hidden=64, num_epochs=300, offset=150,
         seed=0, verbose=True):
    """Train, forecast closed loop on held-out sequences, and return a dict with the
    forecast RMSE, the RMSE of repeating the last observed value (a naive baseline) and
    the training losses."""
    data = make_waveforms(num_sequences + 4, length, seed=seed)
    train_data, test_data = data[:num_sequences], data[num_sequences:]
    net, mu, sigma, losses = train(train_data, num_hidden, num_epochs, seed=seed,
                                   verbose=verbose)
    if verbose:
        print(net.Layers[1])                    # the trained LSTM layer's display
    steps = length - offset
    errs, naive = [], []
    for x in test_data:
        xn = (x - mu) / sigma
        Y = forecast_closed_loop(net, xn, offset, steps) * sigma + mu
        if verbose and not errs:
            print(f"forecast output size: {Y.shape[0]}×{Y.shape[1]}")
        truth = x[:, offset:]
        errs.append(np.sqrt(np.mean((Y - truth) ** 2)))
        naive.append(np.sqrt(np.mean((x[:, offset - 1:offset] - truth) ** 2)))
    result = dict(rmse=float(np.mean(errs)), naive_rmse=float(np.mean(naive)),
                  final_loss=losses[-1], first_loss=losses[0])
    if verbose:
        print(f"closed-loop forecast of {steps} steps: RMSE {result['rmse']:.4f} "
              f"(repeating the last value: {result['naive_rmse']:.4f})")
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="a quick run at small size")
    args = ap.parse_args([] if os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1" else None)
    if args.small or os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1":
        main(num_sequences=16, length=80, num_hidden=32, num_epochs=120, offset=60)
    else:
        main()
