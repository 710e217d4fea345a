"""oneDNN's CPU kernels for TensorFlow on every x86 CPU, not only the newest.

TensorFlow (since 2.9) turns its oneDNN kernels on by default only on x86 CPUs with
AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX; elsewhere, on an AVX2 CPU such as an AMD
EPYC of the Zen 3 generation, its convolutions, matmuls and batch norms run on Eigen.
On such a host (2 cores) oneDNN took the image tower's training pass at batch 64 from
114.7 to 73.3 ms, and the training of dual_encoder, show_and_tell and vqa from 0.71,
0.74 and 0.77x PyTorch to 1.01, 0.91 and 0.96x (and from 0.77, 0.69 and 0.73x to 1.13,
1.17 and 1.00x: the same benchmark, twice each way). PyTorch uses oneDNN there.

`TF_ENABLE_ONEDNN_OPTS` is read once, when TensorFlow loads, so this must run before
TensorFlow is imported; a value the user set (`0` to turn them off) stays. The
environment also reaches the processes started from here. Other architectures keep
TensorFlow's own default.
"""

import os
import platform

VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
X86 = ("x86_64", "AMD64", "i386", "i686")


def prefer_onednn() -> None:
    """Asks for TensorFlow's oneDNN kernels on x86 unless the environment already says."""
    if platform.machine() in X86:
        os.environ.setdefault(VARIABLE, "1")


def onednn_enabled() -> bool:
    """Whether this process's TensorFlow runs its oneDNN kernels (imports TensorFlow)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())
