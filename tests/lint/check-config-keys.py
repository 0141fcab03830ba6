#!/usr/bin/python3
"""buildyard.ini(5) and the config loader name the same keys.

    check-config-keys.py SOURCE_DIR MASTERD

1. Every key the loader compares against (`key == "NAME"` and
   `starts_with("NAME.")` in services/common/config*.cpp and
   worker_config.cpp; a backend's file adds its prefix) is documented in
   buildyard.ini(5), and every key documented for the worker's own file is
   one of them.
2. Every key documented for [master], [mail], [latentd], [worker NAME] and
   [builder NAME] is accepted in that section by the real loader
   (`buildyard-masterd --check-config`): whatever else it says about a
   made-up value, it never says "unknown key".
"""
import glob
import os
import re
import subprocess
import sys
import tempfile

SECTIONS = {  # .Sh heading -> where the keys go
    "THE [master] SECTION": "master",
    "THE [mail] SECTION": "mail",
    "THE [latentd] SECTION": "latentd",
    "THE [worker NAME] SECTIONS": "worker",
    "THE [builder NAME] SECTIONS": "builder",
    "THE WORKER'S OWN FILE": "worker-file",
}


def documented_keys(page):
    """{section: set of keys} from the .It Cm items of each section's
    outermost tag lists. A key written `Cm property . Ns Ar KEY` is the
    prefix `property.`."""
    keys = {}
    section = None
    depth = 0
    with open(page) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith(".Sh "):
                section = SECTIONS.get(line[4:].strip())
                depth = 0
            elif line.startswith(".Bl"):
                depth += 1
            elif line.startswith(".El"):
                depth -= 1
            elif section and depth == 1 and line.startswith(".It Cm "):
                for part in line[len(".It "):].split(" , "):
                    m = re.match(r"Cm (\S+)( \. Ns)?", part.strip())
                    if m:
                        keys.setdefault(section, set()).add(m.group(1) + ("." if m.group(2) else ""))
    return keys


def loader_keys(source):
    keys = {}
    files = glob.glob(os.path.join(source, "services/common/config*.cpp"))
    files.append(os.path.join(source, "services/common/worker_config.cpp"))
    for path in files:
        m = re.search(r"config_backend_(\w+)\.cpp$", path)
        prefix = m.group(1) + "." if m else ""
        with open(path) as f:
            text = f.read()
        found = re.findall(r'\bkey == "([^"]+)"', text) + re.findall(r'\bkey\.starts_with\("([^"]+\.)"\)', text)
        for key in found:
            if key != prefix:  # a backend file's test for its own prefix
                keys.setdefault(prefix + key, os.path.relpath(path, source))
    return keys


def probe(masterd, section, key):
    """The loader's messages about `key` in a config that sets it."""
    value = "/nonexistent" if key.endswith(("file", "dir", "xml", "image")) else "1"
    name = key + "x" if key.endswith(".") else key
    header = {"master": "[master]", "mail": "[mail]", "latentd": "[latentd]", "worker": "[worker w]",
              "builder": "[builder b]"}[section]
    extra = ""
    if section == "worker":
        # Backend keys and latent-only keys are probed on a latent worker.
        backend = key.split(".")[0] if "." in key[:-1] else "libvirt"
        extra = f"type = latent\nbackend = {backend}\n" if key not in ("type", "backend") else ""
    text = f"{header}\n{extra}{name} = {value}\n"
    if section != "builder":
        text += "[worker other]\ntype = local\n"
    text += "[builder b2]\nworkers = other\nstep.1 = true\n" if section != "builder" else ""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "master.ini")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([masterd, "--check-config", "--config", path], capture_output=True, text=True,
                           timeout=30)
    return [l for l in r.stderr.splitlines() if f"] {name}: " in l]


def main():
    if len(sys.argv) != 3:
        print("usage: check-config-keys.py SOURCE_DIR MASTERD", file=sys.stderr)
        return 2
    source, masterd = sys.argv[1:]
    page = os.path.join(source, "man/buildyard.ini.5")
    documented = documented_keys(page)
    all_documented = set().union(*documented.values())
    known = loader_keys(source)
    problems = []
    for key in sorted(set(known) - all_documented):
        problems.append(f"{known[key]}: key '{key}' is known to the loader but not documented in man/buildyard.ini.5")
    # The worker's own file has no --check-config: its documented keys must be
    # among those its loader compares against. The master's sections are
    # probed below with the real loader, which also finds keys kept in tables.
    for key in sorted(documented.get("worker-file", set()) - set(known)):
        problems.append(f"man/buildyard.ini.5: key '{key}' of the worker's own file is documented but "
                        f"services/common/worker_config.cpp does not know it")
    for section in ("master", "mail", "latentd", "worker", "builder"):
        if section not in documented:
            problems.append(f"man/buildyard.ini.5: no keys found for [{section}]; was a heading renamed?")
            continue
        for key in sorted(documented[section]):
            for line in probe(masterd, section, key):
                if "unknown key" in line:
                    problems.append(f"man/buildyard.ini.5: [{section}] {key} is documented, but the loader says: "
                                    f"{line}")
    for p in problems:
        print(p, file=sys.stderr)
    counts = ", ".join(f"{len(v)} in {k}" for k, v in sorted(documented.items()))
    print(f"{len(all_documented)} documented keys ({counts}); {len(known)} known to the loader; "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
