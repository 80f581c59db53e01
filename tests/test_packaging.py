"""The wheel a regular ``pip install`` builds carries everything gradc needs at run time
outside a checkout: the C call path extension, the C ABI header (backend "c" and
``gradc build`` compile against it) and the prebuilt vector math library."""
import glob
import json
import os
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_wheel_ships_the_header_and_the_extension(tmp_path):
    # setuptools is in the ``test`` extra: a missing build tool or a failing build is a
    # failure of the package, not a reason to skip
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, f"pip wheel failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    (wheel,) = glob.glob(str(tmp_path / "gradc-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        with open(os.path.join(ROOT, "runtime", "gradc.h"), "rb") as f:
            assert z.read("gradc/_runtime/gradc.h") == f.read()
    assert any(n.startswith("gradc/_callpath") and n.endswith(".so") for n in names), names
    with zipfile.ZipFile(wheel) as z:
        import hashlib
        from gradc.backends import vecmath
        manifest = json.loads(z.read("gradc/_prebuilt/vecmath.json"))
        assert manifest["source_sha256"] == vecmath.source_digest()
        assert {o["level"] for o in manifest["objects"]} == set(vecmath.PREBUILT_LEVELS)
        for o in manifest["objects"]:
            assert hashlib.sha256(z.read("gradc/_prebuilt/" + o["file"])).hexdigest() == o["sha256"]


def test_installed_header_is_preferred(tmp_path, monkeypatch):
    """c_backend finds gradc.h inside the package when it is there (an install), else in
    the checkout's runtime/ (an editable install)."""
    from gradc.backends import c_backend
    here = c_backend._runtime_dir()
    assert os.path.isfile(os.path.join(here, "gradc.h"))
    fake_pkg = tmp_path / "gradc"
    (fake_pkg / "backends").mkdir(parents=True)
    (fake_pkg / "_runtime").mkdir()
    (fake_pkg / "_runtime" / "gradc.h").write_text("/* installed */")
    monkeypatch.setattr(c_backend, "__file__", str(fake_pkg / "backends" / "c_backend.py"))
    assert c_backend._runtime_dir() == str(fake_pkg / "_runtime")
