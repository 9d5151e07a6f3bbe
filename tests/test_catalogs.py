"""Tests of yso_labels.catalogs: APOGEE IDs to Gaia/2MASS/AllWISE/SDSS photometry.

Offline: a local HTTP server speaks the TAP async protocol that astroquery's TAP+ client
uses (POST a multipart job with the uploaded VOTable, 303 to the job, GET phase, GET the
gzip VOTable result) and answers each job from a tiny hand-built archive extract in
``tests/data/catalogs`` (see ``make_archive_extract.py`` there), so every request goes
through astroquery's own machinery and real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import io
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import angular_separation
from astropy.io.votable import from_table
from astropy.io.votable.tree import Info
from astropy.table import MaskedColumn, Table
from conftest import shared_file

from yso_labels.catalog_cache import CatalogError, GaiaArchive, NoNetworkError, QueryCache
from yso_labels.catalogs import (
    build_adql,
    fetch_photometry,
    gaia_mag_error,
    parse_apogee_id,
    propagate,
    query_photometry,
    read_targets,
)
from yso_labels.core.tables import read_meta, read_table
from yso_labels.regions import nearest_region

DATA = Path(__file__).parent / "data" / "catalogs"
REPO = Path(__file__).resolve().parents[1]

# -------------------------------------------------------------------- fake Gaia archive


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _sep(ra1, dec1, ra2, dec2) -> np.ndarray:
    return angular_separation(np.asarray(ra1) * u.deg, np.asarray(dec1) * u.deg,
                              np.asarray(ra2) * u.deg, np.asarray(dec2) * u.deg
                              ).to_value(u.arcsec)


REQUIRED_TABLES = {
    "dr3": ("gaiadr3.tmass_psc_xsc_best_neighbour", "gaiadr3.allwise_best_neighbour",
            "gaiadr1.tmass_original_valid", "gaiadr1.allwise_original_valid",
            "gaiadr3.astrophysical_parameters"),
    "dr2": ("gaiadr2.tmass_best_neighbour", "gaiadr2.allwise_best_neighbour",
            "gaiadr1.tmass_original_valid", "gaiadr1.allwise_original_valid"),
}
GR_TABLES = {("dr3", "sdss"): ("gaiadr3.sdssdr13_best_neighbour",
                               "external.sdssdr13_photoprimary"),
             ("dr2", "sdss"): ("gaiadr2.sdssdr9_best_neighbour", "gaiadr1.sdssdr9_original_valid"),
             ("dr3", "ps1"): ("gaiadr3.panstarrs1_best_neighbour",
                              "gaiadr2.panstarrs1_original_valid"),
             ("dr2", "ps1"): ("gaiadr2.panstarrs1_best_neighbour",
                              "gaiadr2.panstarrs1_original_valid")}
GAIA_COLS = {"source_id": "source_id", "gaia_ra": "ra", "gaia_dec": "dec"}


class Archive:
    """Answers the toolkit's two ADQL queries from the extract tables (a mini join engine)."""

    def __init__(self, tmass: Table, gaia: dict[str, Table]):
        self.tmass, self.gaia = tmass, gaia

    def answer(self, query: str, upload: Table) -> Table:
        rel = "dr3" if "gaiadr3.gaia_source" in query else "dr2"
        gr = "sdss" if "sdss" in query else "ps1"
        for name in REQUIRED_TABLES[rel] + GR_TABLES[(rel, gr)]:
            if name not in query:
                raise ValueError(f"query does not use {name}")
        gaia, tm = self.gaia[rel], self.tmass
        self._current = gaia
        names = [re.split(r"\s+AS\s+|\.", item.strip())[-1]
                 for item in query.split("FROM")[0][len("SELECT"):].split(",")]
        out = []
        by_id = "WHERE tm.designation = u.tmass_id" in query
        radius = float(re.search(r"CIRCLE\('ICRS', u\.ra, u\.dec, ([0-9.e-]+)\)",
                                 query).group(1)) * 3600
        tm_ids = [_text(v) for v in tm["designation"]]
        g_tm = [_text(v) for v in gaia["tmass_designation"].filled(b"")]
        for row in upload:
            near = np.flatnonzero(_sep(gaia["ra"], gaia["dec"], row["ra"], row["dec"])
                                  <= (10.0 if by_id else radius))
            if by_id:
                tid = _text(row["tmass_id"])
                t = [i for i, d in enumerate(tm_ids) if d == tid
                     and _sep(tm["ra"][i], tm["dec"][i], row["ra"], row["dec"]) <= 1.0]
                if not t:
                    continue
                pairs = [(t[0], g, g_tm[g] == tid) for g in near] or [(t[0], None, False)]
            else:
                pairs = [(tm_ids.index(g_tm[g]) if g_tm[g] in tm_ids else None, g, True)
                         for g in near]
            for t_i, g_i, linked in pairs:
                out.append(self._row(names, row, t_i, g_i, linked, gr))
        cols = []
        for j, name in enumerate(names):
            vals = [r[j] for r in out]
            kind = "S17" if name in ("tmass_designation", "tmass_ph_qual") else \
                ("i8" if name in ("row_id", "source_id") else "f8")
            fill = b"" if kind == "S17" else 0
            cols.append(MaskedColumn([fill if v is None else v for v in vals], name=name,
                                     dtype=kind, mask=[v is None for v in vals]))
        return Table(cols)

    def _row(self, names, up, t_i, g_i, linked, gr):
        tm, g = self.tmass, (self.gaia_row(g_i) if g_i is not None else None)
        vals = []
        for name in names:
            if name == "row_id":
                v = int(up["row_id"])
            elif name in ("tmass_designation", "tmass_ph_qual", "j_m", "j_msigcom", "h_m",
                          "h_msigcom", "ks_m", "ks_msigcom"):
                col = {"tmass_designation": "designation", "tmass_ph_qual": "ph_qual"}.get(
                    name, name)
                v = None if t_i is None or tm[col].mask[t_i] else tm[col][t_i]
            elif g is None:
                v = None
            elif name.startswith("gr_") or name.startswith("w") or name == "xm_sep":
                col = name.replace("gr_", "sdss_" if gr == "sdss" else "ps1_")
                v = g[col] if linked else None
            else:
                v = g[GAIA_COLS.get(name, name)]
            vals.append(None if v is np.ma.masked else v)
        return vals

    def gaia_row(self, i):
        return self._current[i]


class FakeTapServer(ThreadingHTTPServer):
    """The TAP async endpoints astroquery uses, on 127.0.0.1."""

    daemon_threads = True

    def __init__(self, archive: Archive):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.archive = archive
        self.url = f"http://127.0.0.1:{self.server_address[1]}/tap-server/tap"
        self.reset()

    def reset(self):
        self.jobs: dict[str, tuple[str, bytes]] = {}
        self.submitted: list[tuple[str, Table]] = []  # accepted jobs
        self.attempts = 0  # job submissions, including refused ones
        self.fail_next = 0  # refuse this many submissions with 503
        self.error_on = None  # job number (1-based) that ends in phase ERROR


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, status, body=b"", ctype="text/plain", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        srv = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if not self.path.endswith("/async"):
            return self._send(404, b"not found")
        srv.attempts += 1
        if srv.fail_next > 0:
            srv.fail_next -= 1
            return self._send(503, b"<html>Service Unavailable</html>", "text/html")
        boundary = self.headers["Content-Type"].split("boundary=")[1].strip('"').encode()
        fields, upload = {}, None
        for part in body.split(b"--" + boundary)[1:-1]:  # multipart/form-data, RFC 7578
            head, _, payload = part.partition(b"\r\n\r\n")
            payload = payload[:-2] if payload.endswith(b"\r\n") else payload
            name = re.search(rb'name="([^"]+)"', head).group(1).decode()
            if b"filename=" in head:
                upload = Table.read(io.BytesIO(payload), format="votable")
            else:
                fields[name] = payload.decode()
        assert fields["UPLOAD"] == "targets,param:targets" and fields["LANG"] == "ADQL"
        srv.submitted.append((fields["QUERY"], upload))
        jobid = f"{len(srv.submitted)}x{time.monotonic_ns()}"
        try:
            if srv.error_on == len(srv.submitted):
                raise ValueError("Query processing error (emulated)")
            table = srv.archive.answer(fields["QUERY"], upload)
            vot = from_table(table)
            vot.resources[0].type = "results"
            vot.resources[0].infos.append(Info(name="QUERY_STATUS", value="OK"))
            vot.resources[0].tables[0].format = "binary2"
            buf = io.BytesIO()
            vot.to_xml(buf)
            data = buf.getvalue()
            if fields["FORMAT"] == "votable_gzip":
                data = gzip.compress(data)
            srv.jobs[jobid] = ("COMPLETED", data)
        except Exception as exc:  # a failed job, as the archive reports it
            srv.jobs[jobid] = ("ERROR", f"{type(exc).__name__}: {exc}".encode())
        self._send(303, headers=[("Location", f"{srv.url}/async/{jobid}")])

    def do_GET(self):
        m = re.match(r".*/async/([^/]+)/(phase|results/result|error)$", self.path)
        if not m or m.group(1) not in self.server.jobs:
            return self._send(404, b"no such job")
        phase, data = self.server.jobs[m.group(1)]
        if m.group(2) == "phase":
            return self._send(200, phase.encode())
        if m.group(2) == "error" or phase == "ERROR":
            err = (b'<?xml version="1.0"?><VOTABLE version="1.4"><RESOURCE type="results">'
                   b'<INFO name="QUERY_STATUS" value="ERROR">' + data +
                   b"</INFO></RESOURCE></VOTABLE>")
            return self._send(200, err, "application/x-votable+xml")
        self._send(200, data, "application/x-votable+xml")


@pytest.fixture(scope="module")
def server():
    archive = Archive(Table.read(DATA / "tmass_psc.vot"),
                      {rel: Table.read(DATA / f"gaia_{rel}.vot") for rel in ("dr3", "dr2")})
    srv = FakeTapServer(archive)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()


@pytest.fixture
def tap(server):
    server.reset()
    return server


def _archive(srv, timeout=5.0):
    return GaiaArchive(url=srv.url, timeout=timeout, poll=0.01)


IDS = ["2M03290406+3117075", "2M10112233+2030405", "2M21003000-0512345",
       "2M05351234-0523456", "2M15000000+4500000", "", "AP20000000+1000000", "2M0329+31",
       "junk"]
RA = [np.nan, np.nan, np.nan, np.nan, np.nan, 150.0, np.nan, np.nan, 210.0]
DEC = [np.nan, np.nan, np.nan, np.nan, np.nan, 2.2, np.nan, np.nan, -30.0]


def _targets():
    return Table({"apogee_id": IDS, "ra": RA, "dec": DEC})


def _run(srv, tmp_path, **kw):
    kw.setdefault("cache", tmp_path / "cache")
    return query_photometry(_targets(), archive=_archive(srv), backoff=0.01, **kw)


# ----------------------------------------------------------------------- pure functions


def test_parse_apogee_id_to_icrs_position():
    tmass, ra, dec, problem = parse_apogee_id("2M03290406+3117075")
    assert (tmass, problem) == ("03290406+3117075", "")
    # 03h29m04.06s = 52.2669167 deg, +31d17m07.5s = 31.2854167 deg
    assert ra == pytest.approx(15 * (3 + 29 / 60 + 4.06 / 3600), abs=1e-12)
    assert ra == pytest.approx(52.2669167, abs=1e-7)
    assert dec == pytest.approx(31.2854167, abs=1e-7)
    assert nearest_region([ra], [dec])[0][0] == "NGC 1333"  # a Perseus YSO
    _, ra, dec, _ = parse_apogee_id("2M05351234-0523456")  # the sign applies to d, m and s
    assert dec == pytest.approx(-(5 + 23 / 60 + 45.6 / 3600), abs=1e-12)
    assert parse_apogee_id(b"2MASS J03290406+3117075")[0] == "03290406+3117075"
    tmass, ra, dec, problem = parse_apogee_id("AP20000000+1000000")
    assert tmass == "" and (ra, dec) == (300.0, 10.0) and problem == ""
    for bad in ("2M0329+31", "2M25000000+0000000", "2M03296006+3117075", "2M00000000+9100000",
                "VESTA", "2M03290406 3117075"):
        tmass, ra, dec, problem = parse_apogee_id(bad)
        assert tmass == "" and np.isnan(ra) and bad.split()[0][:6] in problem


def test_parsed_ids_match_published_apogee_positions():
    """2MASS designations truncate: the catalogue position lies 0-0.15" east (0.01 s of RA)
    and 0-0.1" further from the equator than the position the ID encodes."""
    t = Table.read(shared_file("mdwarf", "mdwarf_labels_olney2020_subset.csv"))
    parsed = [parse_apogee_id(s) for s in t["ap_id"]]
    assert all(p[3] == "" and p[0] == s[2:] for p, s in zip(parsed, t["ap_id"], strict=True))
    ra = np.array([p[1] for p in parsed])
    dec = np.array([p[2] for p in parsed])
    dra = (t["ra_APOGEE"] - ra) * np.cos(np.radians(dec)) * 3600
    ddec = (t["dec_APOGEE"] - dec) * np.sign(dec) * 3600
    assert np.all((dra > -0.05) & (dra < 0.2)) and np.all((ddec > -0.02) & (ddec < 0.11))
    assert 0.03 < np.mean(dra) < 0.1 and 0.04 < np.mean(ddec) < 0.06  # ~half a cell


def test_gaia_magnitude_error_and_proper_motion():
    # 2.5/ln10/100 = 0.0108574 mag; with the EDR3 G zero-point term 0.0027553 mag
    assert gaia_mag_error([100.0])[0] == pytest.approx(0.01085736, rel=1e-6)
    assert gaia_mag_error([100.0], 0.0027553202)[0] == pytest.approx(
        np.hypot(0.01085736, 0.0027553202), rel=1e-6)
    assert np.isnan(gaia_mag_error([0.0])[0]) and np.isnan(gaia_mag_error([np.nan])[0])
    # 100 mas/yr in dec over -16 yr: +1.6"; in ra at dec 60: 1" on the sky = 2" of RA
    ra, dec = propagate([10.0, 10.0], [0.0, 60.0], [0.0, 100.0], [-100.0, 0.0], [-16.0, 10.0])
    assert (dec[0] - 0.0) * 3600 == pytest.approx(1.6, abs=1e-9)
    assert (ra[1] - 10.0) * 3600 == pytest.approx(2.0, rel=1e-9)
    ra, dec = propagate([359.9999], [5.0], [np.nan], [np.nan], [16.0])  # no pm: unchanged
    assert (ra[0], dec[0]) == (359.9999, 5.0)


def test_proper_motion_is_right_near_the_pole():
    """Straight-line tangential motion written out with unit vectors (no parallax, no radial
    velocity): u(t) = u0 + Δt (μα* e_α + μδ e_δ), normalised. Near the pole the linear
    ra + μα*Δt/cos δ formula is off by 1.4"; the propagation agrees to < 0.01 mas."""
    ra0, dec0 = np.array([10.0, 200.0, 45.0]), np.array([89.99, -89.995, -30.0])
    pmra, pmdec = np.array([500.0, -800.0, 30.0]), np.array([300.0, 100.0, 5.0])
    dt = np.array([-16.0, 20.0, -15.5])
    a, d = np.radians(ra0), np.radians(dec0)
    u0 = np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)])
    e_a = np.stack([-np.sin(a), np.cos(a), np.zeros_like(a)])
    e_d = np.stack([-np.sin(d) * np.cos(a), -np.sin(d) * np.sin(a), np.cos(d)])
    v = u0 + dt * np.radians(1 / 3.6e6) * (pmra * e_a + pmdec * e_d)
    v /= np.linalg.norm(v, axis=0)
    ref_ra, ref_dec = np.degrees(np.arctan2(v[1], v[0])) % 360, np.degrees(np.arcsin(v[2]))
    ra, dec = propagate(ra0, dec0, pmra, pmdec, dt)
    assert np.all(_sep(ra, dec, ref_ra, ref_dec) < 1e-5)  # arcsec
    linear = (ra0 + pmra * dt / (3.6e6 * np.cos(d)), dec0 + pmdec * dt / 3.6e6)
    assert _sep(*linear, ref_ra, ref_dec)[0] > 1.0  # what the linear formula gets wrong


def test_adql_uses_the_archive_crossmatch_tables():
    q = build_adql("2mass_id", "dr3", "sdss")
    for name in REQUIRED_TABLES["dr3"] + GR_TABLES[("dr3", "sdss")] + ("gaiadr3.gaia_source",):
        assert name in q
    assert "WHERE tm.designation = u.tmass_id" in q and "TAP_UPLOAD.targets" in q
    assert "psfmag_g" in q and "psfmagerr_r" in q
    q = build_adql("position", "dr2", "panstarrs", radius=3.0)
    assert "gaiadr2.tmass_best_neighbour" in q and "tm.tmass_oid = xm.tmass_oid" in q
    assert "g_mean_psf_mag" in q and f"{3.0 / 3600!r}" in q and "gaiadr3" not in q
    with pytest.raises(ValueError, match="route"):
        build_adql("cone")


# -------------------------------------------------------------- queries through the server


def test_normal_query_puts_each_band_on_its_star(tap, tmp_path):
    out = _run(tap, tmp_path)
    assert len(out) == len(IDS) and list(out["apogee_id"]) == IDS
    a = out[0]  # 2M03290406+3117075: everything from the archive's best neighbours
    assert a["match"] == "2mass_id" and a["source_id"] == 216710367487286272
    assert a["ra"] == pytest.approx(52.2669167, abs=1e-7)  # position from the ID
    for band, value in {"G": 15.8123, "BP": 17.9012, "RP": 14.5567, "J": 12.081, "H": 11.102,
                        "K": 10.573, "W1": 9.953, "W2": 9.412, "W3": 7.623, "g": 18.934,
                        "r": 17.301, "parallax": 3.412, "parallax_error": 0.041}.items():
        assert a[band] == pytest.approx(value, abs=1e-4), band
    assert a["J_error"] == pytest.approx(0.023, abs=1e-6)
    assert a["G_error"] == pytest.approx(np.hypot(2.5 / np.log(10) / 812.3, 0.0027553202),
                                         rel=1e-5)
    assert a["match_sep"] == pytest.approx(0.083, abs=1e-6) and a["n_candidates"] == 1
    # Gaia DR3 FLAME (astrophysical_parameters): radius in R_sun, logl = log10(lum_flame)
    assert a["radius"] == pytest.approx(1.912, abs=1e-5)
    assert a["logl"] == pytest.approx(np.log10(0.6215), abs=1e-5)
    assert out[3]["radius"] == pytest.approx(2.104, abs=1e-5)  # the nearer Gaia source's
    assert np.isnan(out[1]["logl"]) and np.isnan(out[1]["radius"])  # 2MASS only: none
    assert a["tmass_id"] == "03290406+3117075" and a["tmass_ph_qual"] == "AAA"
    d = out[3]  # two Gaia sources share the 2MASS source: the nearer (0.12") is kept
    assert d["source_id"] == 3017366423498432512 and d["n_candidates"] == 2
    assert d["G"] == pytest.approx(12.9013, abs=1e-4) and d["match_sep"] == pytest.approx(0.12)
    f = out[5]  # by position: the high-proper-motion star, 1.6" away in 2016, 0" in 2000
    assert f["match"] == "position" and f["source_id"] == 3838510926538862592
    assert f["match_sep"] < 0.01 and f["parallax"] == pytest.approx(48.77)
    assert np.isnan(f["J"]) and f["g"] == pytest.approx(17.95, abs=1e-4)
    g = out[6]  # AP ID: position encoded in the ID, 2MASS through Gaia's best neighbour
    assert g["match"] == "position" and g["source_id"] == 4297351234567890176
    assert g["J"] == pytest.approx(13.402, abs=1e-4) and g["tmass_id"] == "20000000+1000003"
    # Gaia 2016 offset from the ID position, (0.004 s cos 10 deg + 0.02", 0.32" - 0.01"),
    # moved back 16 yr with pm (-3.2, -5.1) mas/yr
    east = 0.004 * 15 * np.cos(np.radians(10)) + 0.02 + 3.2 * 16e-3
    assert g["match_sep"] == pytest.approx(np.hypot(east, 0.31 + 5.1 * 16e-3), abs=1e-4)
    assert {c for c in ("g", "r", "J", "H", "K", "parallax", "parallax_error")} <= set(
        out.colnames)


def test_partial_matches_keep_what_exists(tap, tmp_path):
    out = _run(tap, tmp_path)
    b = out[1]  # 2MASS source without a Gaia counterpart; its Ks is an upper limit
    assert b["match"] == "2mass_only" and b["source_id"] == -1 and np.isnan(b["match_sep"])
    assert b["J"] == pytest.approx(14.512, abs=1e-4) and b["H"] == pytest.approx(13.901, abs=1e-4)
    assert np.isnan(b["K"]) and np.isnan(b["K_error"]) and b["tmass_ph_qual"] == "AAU"
    assert all(np.isnan(b[c]) for c in ("G", "BP", "RP", "W1", "g", "parallax"))
    c = out[2]  # Gaia + 2MASS + SDSS, no AllWISE
    assert c["source_id"] == 6915123456789012480 and c["g"] == pytest.approx(16.127, abs=1e-4)
    assert np.isnan(c["W1"]) and np.isnan(c["W3_error"]) and c["K"] == pytest.approx(9.385)
    e = out[4]  # a designation that is not in 2MASS
    assert e["match"] == "none" and "not found in the 2MASS PSC" in e["id_status"]
    assert np.isnan(e["J"]) and (e["ra"], e["dec"]) == (225.0, 45.0)  # from the ID
    alone = query_photometry(Table({"apogee_id": ["2M15000000+4500000"]}), cache=None,
                             archive=_archive(tap))
    assert alone["id_status"][0] == "2MASS designation not found in the 2MASS PSC"


def test_malformed_ids_are_listed_and_the_rest_processed(tap, tmp_path, caplog):
    with caplog.at_level("WARNING"):
        out = _run(tap, tmp_path)
    bad = out[7]
    assert "malformed APOGEE ID '2M0329+31'" in bad["id_status"] and bad["match"] == "none"
    assert np.isnan(bad["G"]) and bad["source_id"] == -1
    junk = out[8]  # malformed ID but valid ra/dec: looked up by position (nothing there)
    assert junk["id_status"].endswith("looked up by position") and junk["match"] == "none"
    assert "row 8:" in caplog.text and "row 9:" in caplog.text and "2M0329+31" in caplog.text
    assert out[0]["source_id"] > 0 and list(out["id_status"][:4]) == ["ok"] * 4


def test_chunked_query_gives_the_same_table(tap, tmp_path):
    whole = _run(tap, tmp_path / "a", chunk_size=100)
    assert len(tap.submitted) == 2  # one query per route
    tap.reset()
    chunked = _run(tap, tmp_path / "b", chunk_size=2)
    sizes = [len(up) for _, up in tap.submitted]
    assert sizes == [2, 2, 1, 2, 1]  # five 2MASS IDs, three positions (AP ID, ra/dec, junk)
    assert sorted(np.concatenate([np.asarray(up["row_id"]) for _, up in tap.submitted])) == \
        [0, 1, 2, 3, 4, 5, 6, 8]
    for name in whole.colnames:
        a, b = np.asarray(whole[name]), np.asarray(chunked[name])
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name


def test_transient_failure_succeeds_on_retry(tap, tmp_path, caplog):
    tap.fail_next = 2  # two 503 answers, then the archive recovers
    with caplog.at_level("WARNING"):
        out = _run(tap, tmp_path, retries=3)
    assert tap.attempts == 4 and len(tap.submitted) == 2
    assert caplog.text.count("retry") == 2 and out[0]["G"] == pytest.approx(15.8123, abs=1e-4)
    tap.reset()
    tap.fail_next = 5
    with pytest.raises(CatalogError, match="after 2 attempts"):
        _run(tap, tmp_path / "other", retries=1)


def test_cache_hit_skips_the_archive(tap, tmp_path):
    first = _run(tap, tmp_path)
    assert len(tap.submitted) == 2 and first.meta["n_cached"] == 0
    assert len(list((tmp_path / "cache").glob("*.vot"))) == 2
    tap.reset()
    again = _run(tap, tmp_path)
    assert tap.attempts == 0 and again.meta["n_cached"] == 2
    assert np.array_equal(first["source_id"], again["source_id"])
    assert np.array_equal(first["K"], again["K"], equal_nan=True)
    # a different release is a different query: not served from the cache
    dr2 = _run(tap, tmp_path, gaia_release="dr2")
    assert len(tap.submitted) == 2 and dr2[0]["source_id"] == 216710367487286400


def test_service_error_mid_run_keeps_fetched_chunks(tap, tmp_path):
    out_file = tmp_path / "phot.fits"
    tap.error_on = 3  # the third job fails with a query error (not retried)
    with pytest.raises(CatalogError, match="emulated"):
        fetch_photometry(_write_ids(tmp_path), out_file, cache=tmp_path / "cache",
                         chunk_size=2, url=tap.url, retries=2)
    assert tap.attempts == 3 and not out_file.exists()
    assert not list(tmp_path.glob(".phot.fits*"))  # nothing half-written
    assert len(list((tmp_path / "cache").glob("*.vot"))) == 2
    tap.reset()
    out = fetch_photometry(_write_ids(tmp_path), out_file, cache=tmp_path / "cache",
                           chunk_size=2, url=tap.url)
    assert len(tap.submitted) == 3  # 5 chunks, 2 of them from the cache
    assert read_table(out_file)["source_id"][0] == out["source_id"][0] > 0


def _write_ids(tmp_path) -> Path:
    path = tmp_path / "ids.csv"
    _targets().write(path, format="ascii.csv", overwrite=True)
    return path


def test_output_header_and_release_options(tap, tmp_path):
    out_file = tmp_path / "phot.fits"
    fetch_photometry(_write_ids(tmp_path), out_file, cache=None, url=tap.url)
    meta = read_meta(out_file)
    assert meta["GAIAREL"] == "Gaia DR3" and "SDSS DR13" in meta["GRSYSTEM"]
    assert meta["STEP"] == "fetch-photometry" and meta["NBADID"] == 3 and meta["NGAIA"] == 5
    assert "gaiadr3.sdssdr13_best_neighbour" in meta["GRSOURCE"]
    ps1 = fetch_photometry(_write_ids(tmp_path), tmp_path / "ps1.csv", cache=None,
                           url=tap.url, gr_source="panstarrs")
    assert ps1[0]["g"] == pytest.approx(18.801, abs=1e-4) and np.isnan(ps1[2]["g"])
    assert "NOT SDSS" in read_meta(tmp_path / "ps1.csv")["GRSYSTEM"]
    dr2 = fetch_photometry(_write_ids(tmp_path), tmp_path / "dr2.ecsv", cache=None,
                           url=tap.url, gaia_release="dr2")
    assert dr2[0]["source_id"] == 216710367487286400 and dr2[0]["parallax"] == 3.301
    assert dr2[0]["G_error"] == pytest.approx(2.5 / np.log(10) / 700.0, rel=1e-5)
    assert dr2[0]["radius"] == pytest.approx(1.855, abs=1e-5)  # DR2 radius_val
    assert "astrophysical_parameters" in meta["RADLUM"]
    assert all("gaiadr2." in q and "gaiadr3." not in q for q, _ in tap.submitted[-2:])


def test_read_targets_accepts_bare_lists_and_any_case(tmp_path):
    bare = tmp_path / "ids.txt"
    bare.write_text("2M03290406+3117075\n2M10112233+2030405\n")
    assert list(read_targets(bare)["apogee_id"]) == ["2M03290406+3117075", "2M10112233+2030405"]
    upper = tmp_path / "upper.csv"
    upper.write_text("APOGEE_ID,RA,DEC\n2M03290406+3117075,52.27,31.29\n")
    t = read_targets(upper)
    assert {"apogee_id", "ra", "dec"} <= set(t.colnames)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("name,mag\nx,1\n")
    with pytest.raises(ValueError, match="apogee_id or columns ra, dec"):
        read_targets(wrong)


def test_cache_key_depends_on_query_and_rows():
    up = Table({"row_id": [0, 1], "ra": [1.0, 2.0], "dec": [3.0, 4.0]})
    k = QueryCache.key("u", "SELECT 1", up)
    assert k == QueryCache.key("u", "SELECT 1", up.copy())
    assert k != QueryCache.key("u", "SELECT 2", up)
    up2 = up.copy()
    up2["ra"][1] = 2.0000001
    assert k != QueryCache.key("u", "SELECT 1", up2)


# ------------------------------------------------------------------------ faults and CLI


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("url", [f"http://127.0.0.1:{_closed_port()}/tap-server/tap",
                                 "https://gaia-archive.invalid/tap-server/tap"])
def test_no_network_fails_fast_with_one_line(tmp_path, url):
    ids = _write_ids(tmp_path)
    out = tmp_path / "phot.fits"
    t0 = time.monotonic()
    cmd = "import sys; from yso_labels.cli import main; sys.exit(main())"
    proc = subprocess.run([sys.executable, "-c", cmd, "fetch-photometry",
                           str(ids), str(out), "--url", url, "--cache", str(tmp_path / "c")],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert time.monotonic() - t0 < 30
    assert proc.returncode != 0 and not out.exists() and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "WARNING" not in ln]
    assert len(lines) == 1 and "cannot reach the Gaia archive" in lines[0], proc.stderr
    assert proc.stdout == ""


def test_silent_service_times_out_and_gives_up(tmp_path):
    with socket.socket() as black_hole:  # accepts connections, never answers
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(8)
        url = f"http://127.0.0.1:{black_hole.getsockname()[1]}/tap-server/tap"
        archive = GaiaArchive(url=url, timeout=0.5, poll=0.01)
        t0 = time.monotonic()
        with pytest.raises(CatalogError, match="after 2 attempts.*timed out"):
            query_photometry(_targets(), archive=archive, cache=None, retries=1, backoff=0.01)
        assert time.monotonic() - t0 < 10


def test_unreachable_host_is_no_network_error():
    archive = GaiaArchive(url=f"http://127.0.0.1:{_closed_port()}/tap", timeout=2)
    with pytest.raises(NoNetworkError, match="no network"):
        archive.check_reachable()


def test_cli_and_script_write_a_table_the_mdwarf_step_reads(tap, tmp_path):
    from yso_labels.cli import main
    from yso_labels.cli.labels import run_mdwarf
    ids = _write_ids(tmp_path)
    assert main(["fetch-photometry", str(ids), str(tmp_path / "phot.fits"), "--url", tap.url,
                 "--cache", "none", "--chunk-size", "3"]) == 0
    labels = run_mdwarf(str(tmp_path / "phot.fits"), str(tmp_path / "md.fits"))
    assert list(np.ma.filled(labels["apogee_id"], "")) == IDS and np.isfinite(labels["teff"][0])
    proc = subprocess.run([sys.executable, "scripts/fetch_photometry.py", str(ids),
                           str(tmp_path / "s.csv"), "--url", tap.url, "--cache", "none"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "5 with a Gaia source, 1 with 2MASS only" in proc.stdout
    assert read_table(tmp_path / "s.csv")["J"][1] == pytest.approx(14.512, abs=1e-4)


def test_real_mdwarfs_round_trip_through_the_archive(tap, tmp_path):
    """400 published M dwarfs (Olney et al. 2020 release) as the archive's content: every
    band lands on its own star, and the M-dwarf relations give the same labels as from the
    published photometry."""
    from yso_labels.mdwarf import mdwarf_labels
    t = Table.read(shared_file("mdwarf", "mdwarf_labels_olney2020_subset.csv"))
    n = len(t)
    tm = Table({"designation": np.char.encode(np.asarray([s[2:] for s in t["ap_id"]])),
                "ra": t["ra_APOGEE"], "dec": t["dec_APOGEE"], "ph_qual": [b"AAA"] * n,
                "j_m": t["J_app"], "j_msigcom": np.full(n, 0.02), "h_m": t["H_app"],
                "h_msigcom": np.full(n, 0.02), "ks_m": t["K_app"], "ks_msigcom": np.full(n, 0.02)},
               masked=True)
    nulls = np.ma.masked_all(n)
    gaia = Table({"source_id": t["source_id"], "ra": t["ra_APOGEE"], "dec": t["dec_APOGEE"],
                  "ref_epoch": np.full(n, 2016.0), "pmra": np.zeros(n), "pmdec": np.zeros(n),
                  "parallax": t["parallax"], "parallax_error": np.full(n, 0.05),
                  "tmass_designation": tm["designation"], "xm_sep": np.full(n, 0.1),
                  "sdss_g": t["g"], "sdss_g_error": np.full(n, 0.01), "sdss_r": t["r"],
                  "sdss_r_error": np.full(n, 0.01)}, masked=True)
    for name in ("phot_g_mean_mag", "phot_g_mean_flux_over_error", "phot_bp_mean_mag",
                 "phot_bp_mean_flux_over_error", "phot_rp_mean_mag",
                 "phot_rp_mean_flux_over_error", "radius_flame", "lum_flame", "w1mpro",
                 "w1mpro_error", "w2mpro",
                 "w2mpro_error", "w3mpro", "w3mpro_error", "ps1_g", "ps1_g_error", "ps1_r",
                 "ps1_r_error"):
        gaia[name] = nulls
    saved = tap.archive.tmass, tap.archive.gaia
    tap.archive.tmass, tap.archive.gaia = tm, {"dr3": gaia, "dr2": gaia}
    try:
        out = query_photometry(Table({"apogee_id": t["ap_id"]}), archive=_archive(tap),
                               cache=None, chunk_size=150)
    finally:
        tap.archive.tmass, tap.archive.gaia = saved
    assert len(tap.submitted) == 3 and np.all(out["match"] == "2mass_id")
    assert np.array_equal(out["source_id"], t["source_id"])
    for mine, theirs in (("g", "g"), ("r", "r"), ("J", "J_app"), ("H", "H_app"),
                         ("K", "K_app"), ("parallax", "parallax")):
        assert np.allclose(out[mine], t[theirs], atol=1e-9), mine
    ours = mdwarf_labels(out["g"], out["r"], out["J"], out["H"], out["K"], out["parallax"])
    ref = mdwarf_labels(t["g"], t["r"], t["J_app"], t["H_app"], t["K_app"], t["parallax"])
    assert np.allclose(ours["teff"], ref["teff"], equal_nan=True)
    assert np.allclose(ours["teff"], t["T_eff"], atol=0.1)  # the published labels


def test_readme_recipe_ids_to_yso_labels_needs_no_allow_missing(tap, tmp_path):
    """README: fetch-photometry, then photcnn predict on its output with no --allow-missing
    (FLAME radius and luminosity come with the photometry); stars with G and a parallax get
    labels, the row with FLAME values uses them (not the unreported limits)."""
    from yso_labels.cli import main
    from yso_labels.photcnn import build_inputs, train_photcnn
    from yso_labels.synthetic import draw_population

    phot = tmp_path / "phot.fits"
    assert main(["fetch-photometry", str(_write_ids(tmp_path)), str(phot), "--url", tap.url,
                 "--cache", "none"]) == 0
    model = tmp_path / "photcnn.pt"
    train_photcnn(draw_population(300, seed=3), model, seed=0, epochs=2, patience=2,
                  device="cpu")
    assert main(["photcnn", "predict", "--model", str(model), str(phot),
                 str(tmp_path / "yso.fits")]) == 0
    yso = read_table(tmp_path / "yso.fits")
    assert np.isfinite(np.ma.filled(yso["teff"], np.nan)[0])  # star A
    x, _ = build_inputs(read_table(phot), ["G", "BP", "RP", "J", "H", "K"])
    assert x[0, 6] == pytest.approx(np.log10(1.912), abs=1e-5)  # log r* from FLAME
