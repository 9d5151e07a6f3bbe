"""``apogee-net demo``: the whole pipeline on built-in data."""

from __future__ import annotations

from yso_labels.core.guards import nonneg_int
from yso_labels.core.runtime import device_arg


def _cmd_demo(args) -> None:
    from apogee_net.demo import run_demo

    result = run_demo(args.out, quick=args.quick, seed=args.seed, device=args.device,
                      emulator=args.emulator)
    print(f"\ndemo finished in {result['timings_s']['total']:.0f} s "
          f"(spectra from the {result['spectra_model']} model)")
    print(f"  label table:       {result['labels']}")
    print(f"  adapted model:     {result['model']}")
    print(f"  catalogue:         {result['catalog']}")
    print(f"  evaluation report: {result['evaluation']}/ (tables, figures)")
    print(f"  YSO report:        {result['ysos']}/ (candidates, age bins, figures)")


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on built-in data (offline)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--quick", action="store_true", help="smaller samples, a few minutes")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--device", type=device_arg, default="auto", help="auto, cpu or cuda")
    p.add_argument("--emulator", help="The Payne emulator NN_unnormalized_spectra.npz "
                   "(default: $YSO_PAYNE_DIR or the download cache, else the analytic fallback)")
    p.set_defaults(func=_cmd_demo)
