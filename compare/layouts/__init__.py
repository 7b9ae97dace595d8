"""The user's layout: how hand-written code holds a network's examples, parameters, targets and
gradients, and how to translate between it and torch's (examples in rows, W (out, in), b (out,),
names ``0.weight``), in which the reference runs.

    layout     Layout, the named layouts (torch, or-gate / deeplearning.ai, cs231n, nielsen),
               the conversions both ways, and the words of a report in the user's terms
    adapters   networks as objects made into a function (params, X, Y) -> (cost, grads):
               a model with params and loss(X, y), a per-example backprop(x, y) over lists,
               layer objects with forward/backward, a course's forward and backward functions
    cached     a layer written the CS231n way, forward -> (out, cache), backward(dout, cache)
               -> (dx, dgamma, dbeta), made into the layer check_layer checks
    state      a layer's mode, buffers (running statistics) and randomness, as check_layer
               carries them to the torch module and compares them
    images     NCHW (torch's) and NHWC images, and the conversions between them

Imports compare.errors and NumPy only: it never calls torch nor runs a check (compare.check does,
and imports it).
"""
