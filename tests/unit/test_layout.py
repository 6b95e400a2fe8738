"""One production layout for every operator file we ship.

README.md, crontab.example, config/systemd/escapia-ical.{service,timer},
config/nginx.conf.example and the comments of config/example.yaml must name the same
folder for each role (code, config, state_dir, output_dir, logs), the same service user
and monitoring group, and only accounts and secret variables that config/example.yaml
defines. The checks are functions from file texts to a list of problems, so that the tests
below can also show that each one catches the mistakes the files used to have.
"""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
README, CRONTAB, SERVICE, TIMER, NGINX, EXAMPLE = (
    "README.md", "crontab.example", "config/systemd/escapia-ical.service",
    "config/systemd/escapia-ical.timer", "config/nginx.conf.example", "config/example.yaml")

CODE = "/opt/escapia-ical"
LAYOUT = {  # role -> the one place for it
    "code": CODE,
    "config": "/etc/escapia-ical/accounts.yaml",
    "state_dir": "/var/lib/escapia-ical",
    "output_dir": "/srv/escapia-ical/feeds",
    "logs": "/var/log/escapia-ical",
}
CLI = f"{CODE}/.venv/bin/escapia-ical"
USER, MONITOR_GROUP = "escapia", "escapia-monitor"
# What may live below the code and config folders; below the other roots, anything may.
ALLOWED_BELOW = {
    CODE: (".venv", "README.md", "config/example.yaml"),
    "/etc/escapia-ical": ("accounts.yaml", "credentials"),
}
NOT_PRODUCTION_VARS = {"ESCAPIA_SANDBOX_URL"}  # example.yaml's base_url, deleted in production
SECRET_NAME = re.compile(r"\b[A-Z][A-Z0-9]*_(?:CLIENT_ID|CLIENT_SECRET|SOAP_USER|SOAP_PASSWORD)\b")
ABSOLUTE_PATH = re.compile(r"(?<![\w./~<>-])/[\w.*-]+(?:/[\w.*<>-]+)*/?")
ACCOUNT_MENTIONS = [  # where an operator file names an account
    re.compile(r"--account[ =]([a-z0-9][a-z0-9-]*)"),
    re.compile(r"(?<![\w.-])/([a-z0-9][a-z0-9-]*)/[\w.~-]+\.ics\b"),  # a feed's URL path
    re.compile(r"\b(?:output|feeds|accounts)/([a-z0-9][a-z0-9-]*)/"),
    re.compile(r"escapia-ical: (?:error|warning): ([a-z0-9][a-z0-9-]*)[:/]"),
    re.compile(r"`([a-z0-9][a-z0-9-]*): last run failed"),
]


def read_files() -> dict[str, str]:
    """Return the text of every operator file, by path relative to the repository."""
    return {name: (REPO / name).read_text(encoding="utf-8")
            for name in (README, CRONTAB, SERVICE, TIMER, NGINX, EXAMPLE)}


def example_comments(texts: dict[str, str]) -> str:
    """Return the comments of example.yaml (its values are the demo's relative folders)."""
    return "\n".join(line.split("#", 1)[1] for line in texts[EXAMPLE].splitlines() if "#" in line)


def is_ours(path: str) -> bool:
    """Whether ``path`` is a place of escapia-ical: under /opt or /srv, or naming escapia in
    one of its first three parts (not /etc/nginx/conf.d/escapia-ical.conf)."""
    parts = path.strip("/").split("/")
    return parts[0] in ("opt", "srv") or any(part.startswith("escapia") for part in parts[:3])


def misplaced(path: str) -> str | None:
    """Return why ``path`` is not where the layout puts things, or None if it is."""
    path = path.rstrip("/.") or "/"  # a path may end a sentence
    for root in LAYOUT.values():
        if path == root or path.startswith(root + "/"):
            break
    else:
        root = next((r for r in ALLOWED_BELOW if path == r or path.startswith(r + "/")), None)
        if root is None:
            return "is not a folder of the layout " + ", ".join(f"{k} {v}" for k, v in LAYOUT.items())
    below = path[len(root) + 1:]
    allowed = ALLOWED_BELOW.get(root)
    if below and allowed is not None and not any(below == a or below.startswith(a + "/") for a in allowed):
        return f"puts something under {root} that the layout keeps elsewhere"
    return None


def path_problems(texts: dict[str, str]) -> list[str]:
    """Every absolute path of ours, in every file, must be where the layout says."""
    sources = {**{k: v for k, v in texts.items() if k != EXAMPLE}, EXAMPLE + " (comments)": example_comments(texts)}
    problems = []
    for name, text in sources.items():
        for number, line in enumerate(text.replace("file://", " ").splitlines(), 1):
            for path in ABSOLUTE_PATH.findall(line):
                why = misplaced(path) if is_ours(path) else None
                if why:
                    problems.append(f"{name}:{number}: {path} {why}")
    return problems


def unit_file(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(text)
    return parser


def cron_command(text: str) -> list[str]:
    """Return the words of crontab.example's command (its only line that is not a comment)."""
    line = next(row for row in text.splitlines() if row.strip() and not row.startswith("#"))
    return shlex.split(line)[5:]


def option(words: list[str], name: str) -> str | None:
    return words[words.index(name) + 1] if name in words else None


def role_problems(texts: dict[str, str]) -> list[str]:
    """Each file uses the layout's folder for each role it has, and the README shows all."""
    problems = []

    def expect(where: str, role: str, found: str | None, wanted: str) -> None:
        if found != wanted:
            problems.append(f"{where}: {role} is {found!r}, the layout says {wanted!r}")

    cron = cron_command(texts[CRONTAB])
    expect(CRONTAB, "the program", cron[0], CLI)
    expect(CRONTAB, "--config", option(cron, "--config"), LAYOUT["config"])
    expect(CRONTAB, "--log-file's folder", str(Path(option(cron, "--log-file") or "")).rsplit("/", 1)[0],
           LAYOUT["logs"])

    service = unit_file(texts[SERVICE])["Service"]
    command = service["ExecStart"].split()
    expect(SERVICE, "the program", command[0], CLI)
    expect(SERVICE, "--config", option(command, "--config"), LAYOUT["config"])
    expect(SERVICE, "User", service.get("User"), USER)
    expect(SERVICE, "ReadWritePaths", service.get("ReadWritePaths"),
           f"{LAYOUT['state_dir']} {LAYOUT['output_dir']}")
    if "StateDirectory" in service:  # systemd would chown state_dir to User:Group at each start
        problems.append(f"{SERVICE}: StateDirectory= takes state_dir from the group {MONITOR_GROUP}")
    if unit_file(texts[TIMER])["Timer"].get("Unit") != "escapia-ical.service":
        problems.append(f"{TIMER}: does not start escapia-ical.service")

    roots = re.findall(r"(?m)^\s*root\s+([^;]+);", texts[NGINX])
    expect(NGINX, "root", roots[0] if len(roots) == 1 else repr(roots), LAYOUT["output_dir"])

    readme = texts[README]
    for role, path in LAYOUT.items():
        if path not in readme:
            problems.append(f"{README}: never names the {role} folder {path}")
    cron_line = next(row for row in texts[CRONTAB].splitlines() if row.strip() and not row.startswith("#"))
    if cron_line not in readme:
        problems.append(f"{README}: does not show crontab.example's line")
    wanted_state = f"install -d -m 2750 -o {USER} -g {MONITOR_GROUP} {LAYOUT['state_dir']}"
    if wanted_state not in readme:
        problems.append(f"{README}: does not create state_dir as `{wanted_state}` (Monitoring)")
    for owner in re.findall(r"install -d [^\n`]*?-o (\S+)", readme) + re.findall(r"crontab -u (\S+)", readme):
        expect(README, "the service user", owner, USER)
    for group in re.findall(r"install -d [^\n`]*?-g (\S+) " + re.escape(LAYOUT["state_dir"]), readme):
        expect(README, "state_dir's group", group, MONITOR_GROUP)
    comments = example_comments(texts)
    for role in ("state_dir", "output_dir"):
        if LAYOUT[role] not in comments:
            problems.append(f"{EXAMPLE}: its comments do not give the production {role} {LAYOUT[role]}")
    return problems


def name_problems(texts: dict[str, str]) -> list[str]:
    """Accounts and secret variables named anywhere are those example.yaml defines; the
    crontab and the systemd unit provide every secret it references."""
    example = yaml.safe_load(texts[EXAMPLE])
    accounts = {account["name"] for account in example["accounts"]}
    example_vars = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", repr(example))) - NOT_PRODUCTION_VARS  # values only
    problems = []
    for name in (README, CRONTAB, SERVICE, NGINX):
        for number, line in enumerate(texts[name].splitlines(), 1):
            for pattern in ACCOUNT_MENTIONS:
                problems += [f"{name}:{number}: account {found!r} is not in {EXAMPLE} ({', '.join(sorted(accounts))})"
                             for found in pattern.findall(line) if found not in accounts]
            problems += [f"{name}:{number}: variable {found} is not referenced by {EXAMPLE}"
                         for found in SECRET_NAME.findall(line) if found not in example_vars]
    in_crontab = set(re.findall(r"(?m)^#?\s*([A-Z][A-Z0-9_]*)=", texts[CRONTAB])) - {"MAILTO"}
    credentials = dict(re.findall(r"(?m)^LoadCredential=([A-Z][A-Z0-9_]*):(\S+)$", texts[SERVICE]))
    for where, provided in ((CRONTAB, in_crontab), (SERVICE, set(credentials))):
        if provided != example_vars:
            problems.append(f"{where}: provides {sorted(provided)}, {EXAMPLE} references {sorted(example_vars)}")
    for variable, file in credentials.items():
        if file != f"/etc/escapia-ical/credentials/{variable}":
            problems.append(f"{SERVICE}: credential {variable} is read from {file}")
    return problems


def all_problems(texts: dict[str, str]) -> list[str]:
    return path_problems(texts) + role_problems(texts) + name_problems(texts)


def test_every_operator_file_follows_the_one_layout():
    assert all_problems(read_files()) == []


def altered(name: str, old: str, new: str) -> dict[str, str]:
    texts = read_files()
    assert old in texts[name], (name, old)
    texts[name] = texts[name].replace(old, new)
    return texts


def test_the_layouts_the_files_used_to_have_are_caught():
    nginx = all_problems(altered(NGINX, "root /srv/escapia-ical/feeds;", "root /opt/escapia-ical/output;"))
    assert any("/opt/escapia-ical/output puts something under /opt/escapia-ical" in p for p in nginx)
    assert any("root is '/opt/escapia-ical/output'" in p for p in nginx)
    cron = all_problems(altered(CRONTAB, "--config /etc/escapia-ical/accounts.yaml",
                                "--config /opt/escapia-ical/config/accounts.yaml"))
    assert any(p.startswith(f"{CRONTAB}:") and "--config is" in p for p in cron)
    service = all_problems(altered(SERVICE, "ReadWritePaths=/var/lib/escapia-ical /srv/escapia-ical/feeds",
                                   "StateDirectory=escapia-ical\nReadWritePaths=/srv/escapia-ical/output"))
    assert any("StateDirectory=" in p for p in service)
    assert any("/srv/escapia-ical/output is not a folder of the layout" in p for p in service)
    assert any("/srv/feeds is not a folder" in p for p in path_problems(altered(README, "`/srv/escapia-ical/feeds`",
                                                                                 "`/srv/feeds`")))


def test_unknown_accounts_and_secrets_are_caught():
    readme = name_problems(altered(README, "list-units --account demo", "list-units --account hawaii-homes"))
    assert any("account 'hawaii-homes' is not in config/example.yaml" in p for p in readme)
    url = name_problems(altered(README, "(`/demo/1020-101.ics`)", "(`/hawaii-homes/1020-101.ics`)"))
    assert any("'hawaii-homes'" in p for p in url)
    secret = name_problems(altered(SERVICE, "LoadCredential=DEMO_CLIENT_ID:/etc/escapia-ical/credentials/DEMO_CLIENT_ID",
                                   "LoadCredential=HAWAII_CLIENT_ID:/etc/escapia-ical/credentials/HAWAII_CLIENT_ID"))
    assert any("variable HAWAII_CLIENT_ID is not referenced" in p for p in secret)
    assert any(p.startswith(f"{SERVICE}: provides") for p in secret)
    missing = name_problems(altered(CRONTAB, "# DEMO_SOAP_PASSWORD=...\n", ""))
    assert any(p.startswith(f"{CRONTAB}: provides") for p in missing)


def test_the_state_dir_is_made_for_the_monitoring_group():
    problems = role_problems(altered(README, "install -d -m 2750 -o escapia -g escapia-monitor /var/lib/escapia-ical",
                                     "install -d -m 0700 -o escapia /var/lib/escapia-ical"))
    assert any("does not create state_dir" in p for p in problems)
    owner = role_problems(altered(README, "-o escapia -g escapia /srv/escapia-ical/feeds",
                                  "-o feeds -g escapia /srv/escapia-ical/feeds"))
    assert any("the service user is 'feeds'" in p for p in owner)
