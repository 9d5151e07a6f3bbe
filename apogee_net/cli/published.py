"""``apogee-net import-model`` and ``apogee-net export-model``: published APOGEE Net state
dicts (SDSS astra, hutchresearch/ApogeeNet2) to and from toolkit checkpoints."""

from __future__ import annotations


def _cmd_import(args) -> None:
    from apogee_net.network.published import import_model

    path = import_model(args.peer, args.arch, args.out)
    print(f"wrote {path} ({args.arch}, published preprocessing); run it with "
          f"`apogee-net predict DIR --model {path} --out CATALOG.fits`")


def _cmd_export(args) -> None:
    from apogee_net.network.published import export_model

    print(f"wrote {export_model(args.model, args.out)}")


def register(sub) -> None:
    p = sub.add_parser("import-model", help="turn a published APOGEE Net state dict into a "
                       "toolkit model", description="Convert the state dict of a published "
                       "APOGEE Net I (astra) or II (ApogeeNet2) model into a toolkit checkpoint "
                       "that reproduces the peer pipeline's preprocessing and outputs "
                       "(preprocess = published), so predict, evaluate and ysos run on it.")
    p.add_argument("peer", metavar="PEER.pt", help="the published model.pt (a state dict)")
    p.add_argument("--arch", required=True, choices=("apogeenet1", "apogeenet2"))
    p.add_argument("--out", required=True, metavar="MODEL.pt")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("export-model", help="write a toolkit model in the published layout",
                       description="Write the weights of a toolkit checkpoint as a state dict "
                       "with the published key names (conv1..conv12, metadata.l1..l5, fc1..fc3)"
                       " for the peer pipelines.")
    p.add_argument("model", metavar="MODEL.pt")
    p.add_argument("--out", required=True, metavar="PEER.pt")
    p.set_defaults(func=_cmd_export)
