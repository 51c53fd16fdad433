"""Small Triton helpers shared by the kernels."""

import triton
import triton.language as tl


@triton.jit
def rint(x):
    """Round half to even (numpy.rint, torch.round, cvRound) for |x| < 2**23.

    Written with floor rather than libdevice.rint so the Triton interpreter (CPU tests of the
    kernels) runs it too.
    """
    r = tl.floor(x)
    frac = x - r
    odd = (r - 2.0 * tl.floor(r * 0.5)) == 1.0
    up = (frac > 0.5) | ((frac == 0.5) & odd)
    return tl.where(up, r + 1.0, r)
