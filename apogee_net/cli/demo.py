"""``apogee-net demo``: the whole pipeline on built-in data."""

from __future__ import annotations

from apogee_net.options import DemoOptions
from yso_labels.core.options import add_dataclass_arguments, from_namespace


def _cmd_demo(args) -> None:
    from apogee_net.demo import run_demo

    result = run_demo(args.out, from_namespace(DemoOptions, args))
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
    add_dataclass_arguments(p, DemoOptions)
    p.set_defaults(func=_cmd_demo)
