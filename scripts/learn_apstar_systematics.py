"""Learn the instrument systematics of real apStar files for training-time augmentation.

Usage::

    python scripts/learn_apstar_systematics.py ../shared/data/apogee \
        --emulator ../shared/data/payne/NN_unnormalized_spectra.npz \
        --out apogee_net/data/apstar_systematics.npz

Fits every spectrum (combined row and visits) with The Payne's emulator times a quadratic
per chip and stores the derived numbers of :mod:`apogee_net.spectra.systematics` (response shapes,
pixel-flag patterns, sky/telluric/persistence amplitudes, error-vs-flux relation). Pass the
result to ``apogee-net train --augment FILE`` or ``apogee-net simulate --augment FILE``.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from apogee_net.spectra.systematics import learn_systematics


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="+", help="apStar files, directories or globs")
    p.add_argument("--emulator", default=None, help="NN_unnormalized_spectra.npz")
    p.add_argument("--rows", choices=("all", "combined"), default="all",
                   help="all rows (combined + visits, default) or the combined row only")
    p.add_argument("--out", required=True, help="output .npz")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys_ = learn_systematics(args.inputs, args.emulator, rows=args.rows)
    path = sys_.save(args.out)
    np.set_printoptions(precision=4, suppress=True)
    for i, src in enumerate(sys_.sources):
        print(f"{src}: Payne fit {sys_.payne_labels[i]}; chip response {sys_.response[i]}; "
              f"sky err x{sys_.sky_error_ratio[i]:.1f} resid {sys_.sky_resid[i]:.2f}; "
              f"telluric {sys_.telluric_scatter[i]:.4f}; persist {sys_.persist_excess[i]:.4f}; "
              f"error slope {sys_.error_slope[i]} offset {sys_.error_offset[i]}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
