"""Solve Partial Differential Equations Using Deep Learning (MathWorks example), in mlayers.

A physics-informed neural network (PINN) learns the solution ``u(x, t)`` of Burgers'
equation on ``[-1, 1] x [0, 1]``::

    du/dt + u du/dx - (0.01/pi) d2u/dx2 = 0,   u(x, 0) = -sin(pi x),   u(-1, t) = u(1, t) = 0

from collocation points only (no solution data): the loss is the mean squared residual of
the equation at 10,000 interior points (derivatives by ``dlgradient`` with
``EnableHigherDerivatives=true``, the second one a derivative of the first) plus the mean
squared error on the 50 initial-condition and 2x25 boundary-condition points.  The
prediction is then compared with the exact solution (Cole-Hopf integral) at
t = 0.25, 0.5, 0.75, 1.

Which MathWorks version: the example exists in two forms,
https://www.mathworks.com/help/deeplearning/ug/solve-partial-differential-equations-using-deep-learning.html
* R2021a-R2022b: a model function of a struct of fully connected weights (He
  initialization), 10,000 Sobol collocation points in a ``minibatchqueue`` of 1,000,
  Adam for 3000 epochs (learning rate 0.01/(1 + 0.005*iteration)), ``mse`` losses,
  ``dlaccelerate``;
* R2023a and later: a ``dlnetwork`` (``featureInputLayer(2)``, 8 blocks of
  ``fullyConnectedLayer(20)`` + ``tanhLayer``, ``fullyConnectedLayer(1)``), the same
  ``modelLoss`` on ``forward(net, cat(1,X,T))`` with ``dlgradient(loss,net.Learnables)``,
  trained by ``lbfgsupdate`` on the whole data set (``l2loss``; the latest release
  replaces the two ``dlgradient`` calls by ``dljacobian``/``dldivergence``).

Both are ported: ``--solver lbfgs`` (the default) is the R2023a version (the whole data
set each iteration, ``lbfgsupdate`` with ``lbfgsState``, ``l2loss``, stopping on the
gradient and step tolerances or a failed line search); ``--solver adam`` the network
and model loss of R2023a trained by the Adam loop, data and options of R2021a-R2022b
(Sobol points, mini-batches of 1000, ``mse``), listed below.

MATLAB, the R2023a training (the network, data and test as below)::

    X = dlarray(dataX,"BC");
    T = dlarray(dataT,"BC");
    solverState = lbfgsState;
    maxIterations = 1500;
    gradientTolerance = 1e-5;
    stepTolerance = 1e-5;
    accfun = dlaccelerate(@modelLoss);
    lossFcn = @(net) dlfeval(accfun,net,X,T,X0,T0,U0);
    monitor = trainingProgressMonitor(Metrics="TrainingLoss", ...
        Info=["Iteration" "GradientsNorm" "StepNorm"],XLabel="Iteration");
    iteration = 0;
    while iteration < maxIterations && ~monitor.Stop
        iteration = iteration + 1;
        [net, solverState] = lbfgsupdate(net,lossFcn,solverState);
        updateInfo(monitor,Iteration=iteration,GradientsNorm=solverState.GradientsNorm, ...
            StepNorm=solverState.StepNorm);
        recordMetrics(monitor,iteration,TrainingLoss=solverState.Loss);
        monitor.Progress = 100*iteration/maxIterations;
        if solverState.GradientsNorm < gradientTolerance || ...
                solverState.StepNorm < stepTolerance || ...
                solverState.LineSearchStatus == "failed"
            break
        end
    end

(its modelLoss uses ``l2loss`` where the listing below has ``mse``).

MATLAB (network and modelLoss: R2023a, with R2022a's ``mse`` where R2023a has ``l2loss``;
data, training loop and test: R2022a)::

    numBoundaryConditionPoints = [25 25];
    x0BC1 = -1*ones(1,numBoundaryConditionPoints(1));
    x0BC2 = ones(1,numBoundaryConditionPoints(2));
    t0BC1 = linspace(0,1,numBoundaryConditionPoints(1));
    t0BC2 = linspace(0,1,numBoundaryConditionPoints(2));
    u0BC1 = zeros(1,numBoundaryConditionPoints(1));
    u0BC2 = zeros(1,numBoundaryConditionPoints(2));
    numInitialConditionPoints  = 50;
    x0IC = linspace(-1,1,numInitialConditionPoints);
    t0IC = zeros(1,numInitialConditionPoints);
    u0IC = -sin(pi*x0IC);
    X0 = [x0IC x0BC1 x0BC2];
    T0 = [t0IC t0BC1 t0BC2];
    U0 = [u0IC u0BC1 u0BC2];

    numInternalCollocationPoints = 10000;
    pointSet = sobolset(2);
    points = net(pointSet,numInternalCollocationPoints);
    dataX = 2*points(:,1)-1;
    dataT = points(:,2);
    ds = arrayDatastore([dataX dataT]);

    numBlocks = 8;
    fcOutputSize = 20;
    fcBlock = [
        fullyConnectedLayer(fcOutputSize)
        tanhLayer];
    layers = [
        featureInputLayer(2)
        repmat(fcBlock,[numBlocks 1])
        fullyConnectedLayer(1)]
    net = dlnetwork(layers)

    numEpochs = 3000;
    miniBatchSize = 1000;
    executionEnvironment = "auto";
    initialLearnRate = 0.01;
    decayRate = 0.005;
    mbq = minibatchqueue(ds, MiniBatchSize=miniBatchSize, MiniBatchFormat="BC", ...
        OutputEnvironment=executionEnvironment);
    X0 = dlarray(X0,"CB");
    T0 = dlarray(T0,"CB");
    U0 = dlarray(U0);
    averageGrad = [];
    averageSqGrad = [];
    accfun = dlaccelerate(@modelLoss);
    iteration = 0;
    for epoch = 1:numEpochs
        reset(mbq);
        while hasdata(mbq)
            iteration = iteration + 1;
            XT = next(mbq);
            X = XT(1,:);
            T = XT(2,:);
            [loss,gradients] = dlfeval(accfun,net,X,T,X0,T0,U0);
            learningRate = initialLearnRate / (1+decayRate*iteration);
            [net,averageGrad,averageSqGrad] = adamupdate(net,gradients,averageGrad, ...
                averageSqGrad,iteration,learningRate);
        end
        % (plot and title: "Epoch: " + epoch + ", Elapsed: " + ... + ", Loss: " + loss)
    end

    tTest = [0.25 0.5 0.75 1];
    numPredictions = 1001;
    XTest = linspace(-1,1,numPredictions);
    XTest = dlarray(XTest,"CB");
    for i=1:numel(tTest)
        t = tTest(i);
        TTest = t*ones(1,numPredictions);
        TTest = dlarray(TTest,"CB");
        XTTest = cat(1,XTest,TTest);
        UPred = forward(net,XTTest);
        UTest = solveBurgers(extractdata(XTest),t,0.01/pi);
        UPred = extractdata(UPred);
        err = norm(UPred - UTest) / norm(UTest);
        % (plot, title "t = " + t + ", Error = " + gather(err))
    end

    function [loss,gradients] = modelLoss(net,X,T,X0,T0,U0)
        XT = cat(1,X,T);
        U = forward(net,XT);
        gradientsU = dlgradient(sum(U,"all"),{X,T},EnableHigherDerivatives=true);
        Ux = gradientsU{1};
        Ut = gradientsU{2};
        Uxx = dlgradient(sum(Ux,"all"),X,EnableHigherDerivatives=true);
        f = Ut + U.*Ux - (0.01./pi).*Uxx;
        zeroTarget = zeros(size(f),"like",f);
        lossF = mse(f,zeroTarget);
        XT0 = cat(1,X0,T0);
        U0Pred = forward(net,XT0);
        lossU = mse(U0Pred,U0);
        loss = lossF + lossU;
        gradients = dlgradient(loss,net.Learnables);
    end

    function U = solveBurgers(X,t,nu)
        f = @(y) exp(-cos(pi*y)/(2*pi*nu));
        g = @(y) exp(-(y.^2)/(4*nu*t));
        U = zeros(size(X));
        for i = 1:numel(X)
            x = X(i);
            if abs(x) ~= 1
                fun = @(eta) sin(pi*(x-eta)) .* f(x-eta) .* g(eta);
                uxt = -integral(fun,-inf,inf);
                fun = @(eta) f(x-eta) .* g(eta);
                U(i) = uxt / integral(fun,-inf,inf);
            end
        end
    end

Port notes:
* ``dlaccelerate`` is used when mlayers has it (``ml.dlaccelerate``, an
  ``AcceleratedFunction`` that runs the function on every call); otherwise the function
  is called directly, which gives the same numbers.
* ``sobolset(2)`` / ``net(pointSet, n)``: ``scipy.stats.qmc.Sobol(2, scramble=False)``,
  the same unscrambled points (0 0, .5 .5, .75 .25, .25 .75, ...).
* ``solveBurgers``: MATLAB's two ``integral(fun,-inf,inf)`` per point become one
  vectorized trapezoid rule over eta in +-14 sqrt(4 nu t) (the Gaussian factor is below
  1e-85 outside), with ``f`` scaled by the constant exp(-1/(2 pi nu)), which cancels in
  the ratio and keeps the exponentials in range.  Checked against
  ``scipy.integrate.quad(fun, -inf, inf)`` (``--check-exact``).
* Not in the MathWorks example: ``ml.rng(0)`` before building the network (reproducible
  initial weights), and the smaller configurations below.

Run ``python examples/pinn_burgers.py`` (the MathWorks sizes: 10,000 points; L-BFGS
for up to 1500 iterations of the whole set, about 1 s each on 2 cores; ``--solver adam``:
3000 epochs of 10 mini-batches, 35-60 ms each), or with ``--small`` (or
``MLAYERS_EXAMPLE_SMALL=1``: 1000 points, 60 L-BFGS iterations or 30 epochs of
mini-batches of 250: a few seconds); ``--iterations``, ``--epochs``, ``--points`` and
``--mini-batch-size`` change those numbers.  Measured here (2 cores): 2000 points, 400
L-BFGS iterations, 27 s: loss 0.0056, relative error 0.118 against the exact solution
(MathWorks' page, 1500 iterations: 0.0237).
"""
import argparse
import math
import os
import time
import warnings

import numpy as np

import mlayers as ml


# --- the exact solution ----------------------------------------------------------------------

def solveBurgers(X, t, nu, num_nodes=4001):
    """The true solution of Burgers' equation at time ``t`` (Cole-Hopf, as in [3] of the
    MathWorks example), at the points ``X``; 0 at x = -1 and x = 1."""
    X = np.asarray(X, dtype=np.float64)
    U = np.zeros(X.shape)                                      # U = zeros(size(X));
    x = X.reshape(-1)
    inside = np.abs(x) != 1                                    # if abs(x) ~= 1
    half_width = 14 * math.sqrt(4 * nu * t)
    eta = np.linspace(-half_width, half_width, num_nodes)
    # f = @(y) exp(-cos(pi*y)/(2*pi*nu)), scaled by exp(-1/(2*pi*nu)) (cancels in the ratio)
    f = lambda y: np.exp(-(np.cos(np.pi * y) + 1) / (2 * np.pi * nu))
    g = lambda y: np.exp(-(y ** 2) / (4 * nu * t))              # g = @(y) exp(-(y.^2)/(4*nu*t))
    xe = x[inside, None] - eta[None, :]                        # x - eta
    fg = f(xe) * g(eta)[None, :]
    uxt = -np.trapezoid(np.sin(np.pi * xe) * fg, eta, axis=1)   # -integral(fun,-inf,inf)
    U.reshape(-1)[inside] = uxt / np.trapezoid(fg, eta, axis=1)
    return U


def solveBurgers_quad(X, t, nu):
    """``solveBurgers`` with scipy's adaptive quadrature over (-inf, inf), MATLAB's
    ``integral`` (slow: used to check the vectorized version).  ``epsabs=0``: the
    integrals of the scaled ``f`` are as small as 1e-17, below quad's default absolute
    tolerance (1.5e-8), which would end the subdivision early."""
    from scipy.integrate import quad
    f = lambda y: math.exp(-(math.cos(math.pi * y) + 1) / (2 * math.pi * nu))
    g = lambda y: math.exp(-(y ** 2) / (4 * nu * t))
    U = np.zeros(np.shape(X))
    for i, x in enumerate(np.ravel(X)):
        if abs(x) != 1:
            uxt = -quad(lambda eta: math.sin(math.pi * (x - eta)) * f(x - eta) * g(eta),
                        -np.inf, np.inf, epsabs=0, epsrel=1e-10, limit=500)[0]
            U.reshape(-1)[i] = uxt / quad(lambda eta: f(x - eta) * g(eta), -np.inf, np.inf,
                                          epsabs=0, epsrel=1e-10, limit=500)[0]
    return U


# --- the model loss ---------------------------------------------------------------------------

def modelLoss(net, X, T, X0, T0, U0, lossFcn=ml.mse):
    # (lossFcn: R2022a's mse, or R2023a's l2loss)
    # Make predictions with the initial conditions.
    XT = ml.cat(1, X, T)                                    # XT = cat(1,X,T);
    U = ml.forward(net, XT)                                 # U = forward(net,XT);

    # Calculate derivatives with respect to X and T.
    # gradientsU = dlgradient(sum(U,"all"),{X,T},EnableHigherDerivatives=true);
    gradientsU = ml.dlgradient(ml.sum(U, "all"), [X, T], EnableHigherDerivatives=True)
    Ux = gradientsU[0]                                      # Ux = gradientsU{1};
    Ut = gradientsU[1]                                      # Ut = gradientsU{2};

    # Calculate second-order derivatives with respect to X.
    # Uxx = dlgradient(sum(Ux,"all"),X,EnableHigherDerivatives=true);
    Uxx = ml.dlgradient(ml.sum(Ux, "all"), X, EnableHigherDerivatives=True)

    # Calculate lossF. Enforce Burger's equation.
    f = Ut + U * Ux - (0.01 / math.pi) * Uxx                # f = Ut + U.*Ux - (0.01./pi).*Uxx;
    zeroTarget = ml.zeros(ml.size(f), "like", f)            # zeros(size(f),"like",f)
    lossF = lossFcn(f, zeroTarget)                          # l2loss / mse

    # Calculate lossU. Enforce initial and boundary conditions.
    XT0 = ml.cat(1, X0, T0)                                 # XT0 = cat(1,X0,T0);
    U0Pred = ml.forward(net, XT0)                           # U0Pred = forward(net,XT0);
    lossU = lossFcn(U0Pred, U0)

    # Combine losses.
    loss = lossF + lossU

    # Calculate gradients with respect to the learnable parameters.
    gradients = ml.dlgradient(loss, net.Learnables)         # dlgradient(loss,net.Learnables)
    return loss, gradients


# --- the example ------------------------------------------------------------------------------

def make_data(numInternalCollocationPoints):
    # Boundary conditions u(x=-1,t) = 0 and u(x=1,t) = 0 at 25 equally spaced times each.
    numBoundaryConditionPoints = [25, 25]
    x0BC1 = -1 * np.ones((1, numBoundaryConditionPoints[0]))
    x0BC2 = np.ones((1, numBoundaryConditionPoints[1]))
    t0BC1 = np.linspace(0, 1, numBoundaryConditionPoints[0]).reshape(1, -1)
    t0BC2 = np.linspace(0, 1, numBoundaryConditionPoints[1]).reshape(1, -1)
    u0BC1 = np.zeros((1, numBoundaryConditionPoints[0]))
    u0BC2 = np.zeros((1, numBoundaryConditionPoints[1]))

    # Initial condition u(x,t=0) = -sin(pi*x) at 50 equally spaced points.
    numInitialConditionPoints = 50
    x0IC = np.linspace(-1, 1, numInitialConditionPoints).reshape(1, -1)
    t0IC = np.zeros((1, numInitialConditionPoints))
    u0IC = -np.sin(np.pi * x0IC)

    X0 = np.concatenate([x0IC, x0BC1, x0BC2], axis=1)        # X0 = [x0IC x0BC1 x0BC2];
    T0 = np.concatenate([t0IC, t0BC1, t0BC2], axis=1)
    U0 = np.concatenate([u0IC, u0BC1, u0BC2], axis=1)

    # Interior collocation points: a Sobol sequence on (x,t) in [0,1]^2 mapped to [-1,1]x[0,1].
    from scipy.stats import qmc
    with warnings.catch_warnings():          # (scipy warns when n is not a power of 2)
        warnings.simplefilter("ignore")
        points = qmc.Sobol(d=2, scramble=False).random(numInternalCollocationPoints)
    dataX = 2 * points[:, [0]] - 1                          # dataX = 2*points(:,1)-1;
    dataT = points[:, [1]]                                  # dataT = points(:,2);
    return X0, T0, U0, dataX, dataT


def make_layers(numBlocks, fcOutputSize):
    fcBlock = [ml.fullyConnectedLayer(fcOutputSize),
               ml.tanhLayer()]
    layers = ml.layer_array([ml.featureInputLayer(2),
                             *(fcBlock * numBlocks),         # repmat(fcBlock,[numBlocks 1])
                             ml.fullyConnectedLayer(1)])
    return layers


def train_adam(net, ds, X0, T0, U0, numEpochs, miniBatchSize, print_every):
    """R2022a's training: Adam on mini-batches of the collocation points."""
    initialLearnRate = 0.01
    decayRate = 0.005
    executionEnvironment = "auto"
    mbq = ml.minibatchqueue(ds, MiniBatchSize=miniBatchSize, MiniBatchFormat="BC",
                            OutputEnvironment=executionEnvironment)

    X0 = ml.dlarray(X0, "CB")
    T0 = ml.dlarray(T0, "CB")
    U0 = ml.dlarray(U0)

    averageGrad = []
    averageSqGrad = []

    # accfun = dlaccelerate(@modelLoss);
    if hasattr(ml, "dlaccelerate"):
        accfun = ml.dlaccelerate(modelLoss)
    else:
        # an mlayers without dlaccelerate (MATLAB's trace cache): call the function
        # directly, which computes the same values.
        accfun = modelLoss

    losses = []
    start = time.perf_counter()
    cpu_start = time.process_time()
    iteration = 0
    for epoch in range(1, numEpochs + 1):
        ml.reset(mbq)
        while ml.hasdata(mbq):
            iteration += 1
            XT = next(mbq)
            X = XT[0, :]                                    # X = XT(1,:);
            T = XT[1, :]                                    # T = XT(2,:);

            # Evaluate the model loss and gradients using dlfeval and the modelLoss function.
            loss, gradients = ml.dlfeval(accfun, net, X, T, X0, T0, U0)

            # Update learning rate.
            learningRate = initialLearnRate / (1 + decayRate * iteration)

            # Update the network parameters using the adamupdate function.
            net, averageGrad, averageSqGrad = ml.adamupdate(
                net, gradients, averageGrad, averageSqGrad, iteration, learningRate)
            losses.append(float(loss))

        # Training progress (MATLAB: animated line, title "Epoch: ..., Elapsed: ..., Loss: ...")
        if epoch == 1 or epoch % print_every == 0 or epoch == numEpochs:
            elapsed = time.strftime("%H:%M:%S", time.gmtime(time.perf_counter() - start))
            print(f"Epoch: {epoch}, Elapsed: {elapsed}, Loss: {float(loss):.6g}")
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    per_epoch = iteration // numEpochs
    print(f"{iteration} iterations in {seconds:.1f} s ({cpu:.1f} s CPU): mean loss of the "
          f"first epoch {np.mean(losses[:per_epoch]):.6g}, of the last "
          f"{np.mean(losses[-per_epoch:]):.6g}")

    return net


def train_lbfgs(net, dataX, dataT, X0, T0, U0, maxIterations):
    """R2023a's training: L-BFGS on the whole data set."""
    X = ml.dlarray(dataX, "BC")                             # X = dlarray(dataX,"BC");
    T = ml.dlarray(dataT, "BC")
    X0 = ml.dlarray(X0, "CB")
    T0 = ml.dlarray(T0, "CB")
    U0 = ml.dlarray(U0, "CB")
    solverState = ml.lbfgsState()                           # solverState = lbfgsState;
    gradientTolerance = 1e-5
    stepTolerance = 1e-5
    accfun = ml.dlaccelerate(modelLoss)                     # accfun = dlaccelerate(@modelLoss);
    # lossFcn = @(net) dlfeval(accfun,net,X,T,X0,T0,U0);
    lossFcn = lambda net: ml.dlfeval(accfun, net, X, T, X0, T0, U0, lossFcn=ml.l2loss)
    monitor = ml.trainingProgressMonitor(Metrics="TrainingLoss",
                                         Info=["Iteration", "GradientsNorm", "StepNorm"],
                                         XLabel="Iteration")
    start = time.perf_counter()
    iteration = 0
    while iteration < maxIterations and not monitor.Stop:
        iteration += 1
        net, solverState = ml.lbfgsupdate(net, lossFcn, solverState)
        ml.updateInfo(monitor, Iteration=iteration, GradientsNorm=solverState.GradientsNorm,
                      StepNorm=solverState.StepNorm)
        ml.recordMetrics(monitor, iteration, TrainingLoss=solverState.Loss)
        monitor.Progress = 100 * iteration / maxIterations
        if iteration == 1 or iteration % max(1, maxIterations // 6) == 0:
            print(f"Iteration: {iteration}, Loss: {solverState.Loss:.6g}, GradientsNorm: "
                  f"{solverState.GradientsNorm:.3g}, StepNorm: {solverState.StepNorm:.3g}")
        if (solverState.GradientsNorm < gradientTolerance
                or solverState.StepNorm < stepTolerance
                or solverState.LineSearchStatus == "failed"):
            break
    print(f"{iteration} L-BFGS iterations in {time.perf_counter() - start:.1f} s: loss "
          f"{solverState.Loss:.6g}, line search {solverState.LineSearchStatus}")
    return net


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true",
                        help="1000 collocation points, mini-batches of 250, 30 epochs")
    parser.add_argument("--epochs", type=int, default=None, help="number of epochs")
    parser.add_argument("--points", type=int, default=None,
                        help="number of interior collocation points")
    parser.add_argument("--mini-batch-size", type=int, default=None)
    parser.add_argument("--solver", choices=("lbfgs", "adam"), default="lbfgs",
                        help="R2023a's L-BFGS (default) or R2022a's Adam loop")
    parser.add_argument("--iterations", type=int, default=None,
                        help="L-BFGS iterations (MathWorks: 1500)")
    parser.add_argument("--check-exact", action="store_true",
                        help="also check solveBurgers against scipy's quad at a few points")
    small_env = os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1"
    args = parser.parse_args([] if small_env and argv is None else argv)
    small = args.small or small_env
    # MathWorks: 10,000 points, mini-batches of 1000, 3000 epochs, 1001 test points.
    (numInternalCollocationPoints, miniBatchSize, numEpochs, numPredictions,
     print_every) = ((1000, 250, 30, 201, 5) if small else (10000, 1000, 3000, 1001, 50))
    if args.epochs is not None:
        numEpochs = args.epochs
    if args.points is not None:
        numInternalCollocationPoints = args.points
    if args.mini_batch_size is not None:
        miniBatchSize = args.mini_batch_size
    print_every = max(1, min(print_every, numEpochs // 6))
    maxIterations = args.iterations or (60 if small else 1500)
    numBlocks = 8
    fcOutputSize = 20

    X0, T0, U0, dataX, dataT = make_data(numInternalCollocationPoints)
    ds = ml.arrayDatastore(np.concatenate([dataX, dataT], axis=1))   # arrayDatastore([dataX dataT])

    ml.rng(0)                                   # (not in the MathWorks example)
    layers = make_layers(numBlocks, fcOutputSize)
    layers.display("layers")                    # layers = [...] (no semicolon)
    net = ml.dlnetwork(layers)
    print(net)

    if args.solver == "lbfgs":
        net = train_lbfgs(net, dataX, dataT, X0, T0, U0, maxIterations)
    else:
        net = train_adam(net, ds, X0, T0, U0, numEpochs, miniBatchSize, print_every)

    # --- Evaluate model accuracy -----------------------------------------------------------
    tTest = [0.25, 0.5, 0.75, 1]
    XTest = np.linspace(-1, 1, numPredictions).reshape(1, -1)   # linspace(-1,1,numPredictions)
    XTest = ml.dlarray(XTest, "CB")
    UPreds, UTests = [], []
    for t in tTest:
        TTest = t * np.ones((1, numPredictions))
        TTest = ml.dlarray(TTest, "CB")

        # Make predictions.
        XTTest = ml.cat(1, XTest, TTest)                    # XTTest = cat(1,XTest,TTest);
        UPred = ml.forward(net, XTTest)                     # UPred = forward(net,XTTest);
        if t == tTest[0]:
            print(f"forward(net, XTTest) output size: {'×'.join(map(str, UPred.shape))} "
                  f"({UPred.dims})")

        # Calculate target.
        UTest = solveBurgers(ml.extractdata(XTest), t, 0.01 / math.pi)

        # Calculate error.
        UPred = ml.extractdata(UPred).astype(np.float64)
        err = np.linalg.norm(UPred - UTest) / np.linalg.norm(UTest)
        print(f"t = {t}, Error = {err:.4f}")
        UPreds.append(UPred)
        UTests.append(UTest)
    UPred = np.concatenate(UPreds, axis=0)
    UTest = np.concatenate(UTests, axis=0)
    # R2023a: err = norm(UPred - UTest) / norm(UTest) of the 4 x numPredictions matrices
    # (MATLAB's norm of a matrix is its 2-norm, the largest singular value)
    err = np.linalg.norm(UPred - UTest, 2) / np.linalg.norm(UTest, 2)
    print(f"relative error over all test times: {err:.4f}")

    if args.check_exact:
        xs = np.array([-0.9, -0.5, -0.1, -0.01, 0.0, 0.01, 0.3, 0.8])
        for t in tTest:
            a = solveBurgers(xs, t, 0.01 / math.pi)
            b = solveBurgers_quad(xs, t, 0.01 / math.pi)
            print(f"solveBurgers vs quad, t = {t}: max |difference| {np.max(np.abs(a - b)):.2e}")
    return err


if __name__ == "__main__":
    main()
