#!/usr/bin/env python
"""Download The Payne's unnormalised spectral emulator and the ASPCAP wavelength grid.

    python scripts/fetch_payne_emulator.py [--dest DIR] [--force]

Fetches ``NN_unnormalized_spectra.npz`` and ``apogee_wavelength.npz`` from The Payne's
public repository (github.com/tingyuansen/The_Payne, MIT licence; Ting et al. 2019) into
DIR (default: the cache that ``apogee-net simulate`` searches, ~/.cache/yso-apogee-net/payne,
or $YSO_PAYNE_DIR). Each download is checked (SHA-256 of the copy this toolkit was tested
with, and the array shapes) and written atomically. Offline, it stops with a clear message
saying where to put the files by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from yso_labels.core.atomic import atomic_write

REPO = "https://raw.githubusercontent.com/tingyuansen/The_Payne"
#: file -> (candidate URLs, tried in order, SHA-256 of the tested copy)
FILES = {
    "NN_unnormalized_spectra.npz": (
        [f"{REPO}/7d565bf1f088b021f880c46866d4c0ad96855a04/neural_nets/NN_unnormalized_spectra.npz",
         f"{REPO}/master/The_Payne/neural_nets/NN_unnormalized_spectra.npz",
         f"{REPO}/master/neural_nets/NN_unnormalized_spectra.npz"],
        "606aeb4a94b55a88c568ddea05a57eae2699f352048302a60b891243086d5990"),
    "apogee_wavelength.npz": (
        [f"{REPO}/master/The_Payne/other_data/apogee_wavelength.npz",
         f"{REPO}/a932979b025d3d968dc956af69058404325a5273/The_Payne/other_data/"
         "apogee_wavelength.npz"],
        "d95ef8b4132afecf745dd45775ab954b9bb7b5ba0f2040ad9d758eff046283c0"),
}


def _default_dest() -> Path:
    from apogee_net.spectra.emulator import CACHE_DIR

    return Path(os.environ.get("YSO_PAYNE_DIR") or CACHE_DIR)


def _download(urls: list[str], timeout: float) -> tuple[bytes, str]:
    errors = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.read(), url
        except (urllib.error.URLError, OSError) as exc:
            errors.append(f"{url}: {exc}")
    raise ConnectionError("could not download from The Payne's repository:\n  "
                          + "\n  ".join(errors))


def _check(name: str, path: Path) -> None:
    import numpy as np

    with np.load(path) as npz:
        if name.startswith("NN_"):
            if npz["b_array_1"].shape != (7214,) or npz["x_min"].shape != (4,):
                raise ValueError(f"{name}: unexpected array shapes; not the APOGEE emulator")
        elif npz["wavelength"].shape != (7214,):
            raise ValueError(f"{name}: expected 7214 wavelengths")


def fetch(dest: Path, force: bool = False, timeout: float = 60.0) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (urls, sha) in FILES.items():
        final = dest / name
        if final.exists() and not force:
            print(f"{final}: already there (use --force to download again)")
            written.append(final)
            continue
        data, url = _download(urls, timeout)
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha:
            print(f"warning: {name} from {url} differs from the tested copy (sha256 {digest})",
                  file=sys.stderr)
        with atomic_write(final) as tmp:
            tmp.write_bytes(data)
            _check(name, tmp)
        print(f"{final}: {len(data)} bytes from {url}")
        written.append(final)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, help="target folder (default: the cache that "
                        "apogee-net simulate searches)")
    parser.add_argument("--force", action="store_true", help="download again")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    args = parser.parse_args(argv)
    dest = args.dest or _default_dest()
    try:
        fetch(dest, args.force, args.timeout)
    except ConnectionError as exc:
        print(f"fetch_payne_emulator: error: {exc}\nOffline? Copy NN_unnormalized_spectra.npz and "
              f"apogee_wavelength.npz from github.com/tingyuansen/The_Payne by hand into {dest} "
              "(or pass --emulator PATH to apogee-net simulate).", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"fetch_payne_emulator: error: {exc}", file=sys.stderr)
        return 1
    print(f"use: apogee-net simulate --emulator {dest / 'NN_unnormalized_spectra.npz'} ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
