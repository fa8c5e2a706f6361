"""A real single-node SLURM cluster for tests: ``single_node_slurm()`` starts one on localhost, or uses one that runs.

``single_node_slurm()`` (a context manager) yields a :class:`SlurmCluster`:

* when ``sinfo`` already answers with a node that is up (``SLURM_CONF`` or ``/etc/slurm/slurm.conf``), that cluster
  is used and nothing is started or stopped.  Its compute nodes must see the tests' files at the same paths: on a
  multi-node cluster run pytest with ``--basetemp`` on the shared file system;
* otherwise, as root with Debian's ``slurm-wlm`` and ``munge`` installed (``apt-get install slurm-wlm munge``), it
  starts ``munged``, ``slurmctld`` and ``slurmd`` as plain foreground processes (``-F`` / ``-D``, each in its own
  session; no systemd) with everything under a fresh temp folder: munge key and socket, ``slurm.conf``, state and
  spool folders, logs.  The ports are free ones picked at start; ``/etc`` is not touched; client commands (and
  submitit) find the cluster through ``SLURM_CONF``, which is set in ``os.environ`` while the context is open.
  No cgroups (``proctrack/linuxproc``, ``task/none``) and no accounting (``sacct`` answers "Slurm accounting
  storage is disabled").  On exit it cancels the jobs, stops ONLY the daemons it started (its own child processes,
  by PID: SIGTERM, then SIGKILL after 20 s) and removes the folder.

``single_node_slurm(accounting=True)`` gives a cluster whose ``sacct`` answers (``SlurmCluster.accounting``):

* a running cluster is used only when its ``sacct`` answers;
* a started one (also needs Debian's ``mariadb-server`` and ``slurmdbd``) adds, under the same temp folder and as
  plain child processes too: a private MariaDB server (``mariadb-install-db`` into ``db/data``, ``mariadbd
  --no-defaults`` on its own socket and a free port of 127.0.0.1; nothing of ``/etc/mysql`` is read), the
  accounting database and its user (a random password), ``slurmdbd -D`` with its own ``etc/slurmdbd.conf`` (mode
  600, next to ``slurm.conf``: slurmdbd finds it through ``SLURM_CONF``), the cluster registered with ``sacctmgr``,
  and ``slurmctld`` configured with ``accounting_storage/slurmdbd`` and ``jobacct_gather/linux``.  Before it is
  yielded, a test job must show up in ``sacct -j`` as COMPLETED.

Where neither is possible, :class:`SlurmUnavailable` says why (the tests skip with that reason).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("munge", "unmunge", "sinfo", "sbatch", "srun", "squeue", "scontrol", "scancel")
ACCOUNTING = ("mariadb-install-db", "mariadbd", "mariadb", "slurmdbd", "sacctmgr", "sacct")
CLUSTER_NAME = "snnlibtest"


class SlurmUnavailable(RuntimeError):
    """No SLURM cluster can be used or started here; the message says why."""


@dataclass
class SlurmCluster:
    env: dict[str, str]                       #: set while the cluster is open (SLURM_CONF for a started one)
    partition: str                            #: the default partition
    cpus: int                                 #: CPUs of the (first) node
    started: bool                             #: True: this process started the daemons
    folder: Path | None = None                #: the temp folder of a started cluster (config, logs)
    accounting: bool = False                  #: whether sacct answers
    pids: dict[str, int] = field(default_factory=dict)

    def log(self, name: str) -> str:
        """The tail of a started daemon's log (for failure messages)."""
        if self.folder is None:
            return ""
        p = self.folder / "log" / f"{name}.log"
        return p.read_text(errors="replace")[-3000:] if p.is_file() else ""


def _run(cmd: list[str], timeout: float = 20, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def _answers(env: dict[str, str] | None = None) -> tuple[str, int] | None:
    """(default partition, CPUs) of a cluster that answers with a usable node, else None."""
    if shutil.which("sinfo") is None:
        return None
    try:
        r = _run(["sinfo", "-h", "-o", "%P|%T|%c"], timeout=15, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    for line in r.stdout.splitlines():
        part, state, cpus = (line.split("|") + ["", "", ""])[:3]
        if state.rstrip("*~#$@+").startswith(("idle", "mixed", "allocated", "completing")):
            default = [ln.split("|")[0] for ln in r.stdout.splitlines() if ln.split("|")[0].endswith("*")]
            name = (default[0] if default else part).rstrip("*")
            return name, int(cpus.rstrip("+") or 1)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(cond, timeout: float, what: str, cluster: SlurmCluster | None = None, log: str = ""):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    detail = f"\n{log} log:\n{cluster.log(log)}" if cluster is not None and log else ""
    raise SlurmUnavailable(f"timed out after {timeout:.0f} s waiting for {what}{detail}")


def missing_reason(accounting: bool = False) -> str | None:
    """Why a cluster cannot be started here (None: it can), ignoring one that already runs."""
    absent = [b for b in DAEMONS + CLIENTS if shutil.which(b) is None]
    if absent:
        return (f"no SLURM here: {', '.join(absent)} not found (install with: apt-get install -y slurm-wlm munge), "
                "and no running cluster answers sinfo")
    absent = [b for b in ACCOUNTING if shutil.which(b) is None] if accounting else []
    if absent:
        return (f"no SLURM accounting here: {', '.join(absent)} not found (install with: apt-get install -y "
                "mariadb-server slurmdbd), and no running cluster with accounting answers sinfo")
    if os.geteuid() != 0:
        return "starting a single-node SLURM needs root (slurmd starts jobs as their users), and no running " \
               "cluster answers sinfo"
    return None


def _user() -> str:
    return subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip() or "root"


def _conf(folder: Path, sock: Path, ctld_port: int, d_port: int, cpus: int, mem_mb: int, partition: str,
          dbd_port: int | None = None) -> str:
    user = _user()
    if dbd_port is None:
        accounting = ["AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none"]
    else:
        # AccountingStoragePass: the munge socket of slurmctld's connection to slurmdbd (else the default one)
        accounting = ["AccountingStorageType=accounting_storage/slurmdbd", "AccountingStorageHost=localhost",
                      f"AccountingStoragePort={dbd_port}", f"AccountingStoragePass={sock}",
                      "JobAcctGatherType=jobacct_gather/linux"]
    return "\n".join([
        "# single-node SLURM started by tests/slurm_cluster.py",
        f"ClusterName={CLUSTER_NAME}",
        "SlurmctldHost=localhost",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={d_port}",
        "AuthType=auth/munge",
        f"AuthInfo=socket={sock}",
        "CredType=cred/munge",
        f"SlurmUser={user}",
        "SlurmdUser=root",
        f"StateSaveLocation={folder / 'state'}",
        f"SlurmdSpoolDir={folder / 'spool'}",
        f"SlurmctldPidFile={folder / 'run' / 'slurmctld.pid'}",
        f"SlurmdPidFile={folder / 'run' / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={folder / 'log' / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "SchedulerType=sched/backfill",
        "SwitchType=switch/none",
        "MpiDefault=none",
        "ReturnToService=2",
        *accounting,
        "JobCompType=jobcomp/none",
        "SlurmctldTimeout=30",
        "SlurmdTimeout=30",
        "InactiveLimit=0",
        "MinJobAge=300",
        "KillWait=5",
        "Waittime=0",
        f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN",
        f"PartitionName={partition} Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


def _start(cluster: SlurmCluster, procs: dict[str, subprocess.Popen], name: str, cmd: list[str]) -> None:
    """Start a foreground daemon in its own session (setsid), output to log/<name>.stdout."""
    assert cluster.folder is not None
    out = (cluster.folder / "log" / f"{name}.stdout").open("w")
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                         start_new_session=True, env={**os.environ, **cluster.env})
    out.close()
    procs[name] = p
    cluster.pids[name] = p.pid
    time.sleep(0.3)
    if p.poll() is not None:
        text = (cluster.folder / "log" / f"{name}.stdout").read_text(errors="replace")[-2000:]
        raise SlurmUnavailable(f"{name} exited at once (code {p.returncode}): {text}{cluster.log(name)}")


def _stop(procs: dict[str, subprocess.Popen]) -> None:
    """SIGTERM our daemons (the Popen objects: our own children, so the PIDs cannot be someone else's), newest
    first; SIGKILL what is still alive after 20 s."""
    for name in reversed(list(procs)):
        p = procs[name]
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


def _cancel_all(env: dict[str, str]) -> None:
    with contextlib.suppress(Exception):
        jobs = _run(["squeue", "-h", "-o", "%i"], env=env).stdout.split()
        if jobs:
            _run(["scancel", *jobs], env=env)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 30 and _run(["squeue", "-h", "-o", "%i"], env=env).stdout.strip():
                time.sleep(0.3)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _start_accounting(cluster: SlurmCluster, procs: dict[str, subprocess.Popen], sock: Path,
                      dbd_port: int) -> None:
    """MariaDB (its own datadir, socket and port), the accounting database and user, slurmdbd; the cluster
    registered.  ``SLURM_CONF`` must name the cluster's slurm.conf already (slurmdbd.conf is read next to it)."""
    folder = cluster.folder
    assert folder is not None
    env = dict(os.environ)
    user = _user()
    db = folder / "db"
    db.mkdir()
    install = ["mariadb-install-db", "--no-defaults", f"--user={user}", f"--datadir={db / 'data'}",
               "--auth-root-authentication-method=socket", "--skip-test-db",
               "--innodb-log-file-size=8M", "--innodb-buffer-pool-size=32M"]
    try:
        r = _run(install, timeout=180)
    except subprocess.TimeoutExpired:
        raise SlurmUnavailable("mariadb-install-db did not finish within 180 s") from None
    if r.returncode:
        raise SlurmUnavailable(f"mariadb-install-db failed (code {r.returncode}): {(r.stdout + r.stderr)[-2000:]}")
    db_port = _free_port()
    while db_port == dbd_port:
        db_port = _free_port()
    db_sock = db / "mysql.sock"
    _start(cluster, procs, "mariadbd", [
        "mariadbd", "--no-defaults", f"--user={user}", f"--datadir={db / 'data'}", f"--socket={db_sock}",
        f"--pid-file={folder / 'run' / 'mariadbd.pid'}", f"--port={db_port}", "--bind-address=127.0.0.1",
        "--skip-name-resolve", f"--log-error={folder / 'log' / 'mariadbd.log'}",
        "--innodb-log-file-size=8M", "--innodb-buffer-pool-size=32M"])
    client = ["mariadb", "--no-defaults", "-S", str(db_sock), "-u", "root"]

    def db_answers():
        if procs["mariadbd"].poll() is not None:
            raise SlurmUnavailable(f"mariadbd exited (code {procs['mariadbd'].returncode}): "
                                   f"{cluster.log('mariadbd')}")
        return _run([*client, "-e", "select 1"], timeout=10).returncode == 0

    _wait(db_answers, 90, "MariaDB to answer", cluster, "mariadbd")
    password = os.urandom(12).hex()
    sql = "CREATE DATABASE slurm_acct_db;" + "".join(
        f"CREATE USER 'slurm'@'{host}' IDENTIFIED BY '{password}';"
        f"GRANT ALL ON slurm_acct_db.* TO 'slurm'@'{host}';" for host in ("127.0.0.1", "localhost"))
    r = _run([*client, "-e", sql], timeout=30)
    if r.returncode:
        raise SlurmUnavailable(f"creating the accounting database failed: {r.stderr.strip()}")

    dbd_conf = folder / "etc" / "slurmdbd.conf"
    dbd_conf.touch(mode=0o600)
    dbd_conf.chmod(0o600)                          # slurmdbd: owned by its SlurmUser, mode 600 (it holds a password)
    dbd_conf.write_text("\n".join([
        "# slurmdbd of the single-node SLURM started by tests/slurm_cluster.py",
        "AuthType=auth/munge",
        f"AuthInfo=socket={sock}",
        "DbdHost=localhost",
        f"DbdPort={dbd_port}",
        f"SlurmUser={user}",
        "StorageType=accounting_storage/mysql",
        "StorageHost=127.0.0.1",
        f"StoragePort={db_port}",
        "StorageUser=slurm",
        f"StoragePass={password}",
        "StorageLoc=slurm_acct_db",
        f"PidFile={folder / 'run' / 'slurmdbd.pid'}",
        f"LogFile={folder / 'log' / 'slurmdbd.log'}",
        "",
    ]))
    _start(cluster, procs, "slurmdbd", ["slurmdbd", "-D"])

    def dbd_listens():
        if procs["slurmdbd"].poll() is not None:
            raise SlurmUnavailable(f"slurmdbd exited (code {procs['slurmdbd'].returncode}): "
                                   f"{cluster.log('slurmdbd')}")
        return _listening(dbd_port)

    _wait(dbd_listens, 60, f"slurmdbd to listen on port {dbd_port}", cluster, "slurmdbd")

    def registered():
        _run(["sacctmgr", "-i", "add", "cluster", CLUSTER_NAME], env=env)
        listed = _run(["sacctmgr", "-n", "-P", "list", "cluster", "format=cluster"], env=env).stdout.split()
        return CLUSTER_NAME in listed

    _wait(registered, 60, f"sacctmgr to register cluster {CLUSTER_NAME}", cluster, "slurmdbd")


def _check_accounting(cluster: SlurmCluster, env: dict[str, str]) -> None:
    """A test job must be accepted and show up in sacct as COMPLETED (slurmctld -> slurmdbd -> MariaDB -> sacct)."""
    assert cluster.folder is not None
    r = _run(["sbatch", "--parsable", "-D", str(cluster.folder / "run"), "-o", "/dev/null", "--wrap", "true"],
             env=env, timeout=60)
    if r.returncode:
        raise SlurmUnavailable(f"sbatch of the accounting check job failed: {r.stderr.strip()}"
                               f"\nslurmctld log:\n{cluster.log('slurmctld')}")
    job = r.stdout.strip().split(";")[0]
    seen: list[str] = []

    def completed():
        q = _run(["sacct", "-n", "-P", "-X", "-j", job, "-o", "State"], env=env)
        seen[:] = [(q.stdout + q.stderr).strip()]
        return q.returncode == 0 and q.stdout.strip() == "COMPLETED"

    try:
        _wait(completed, 90, f"sacct -j {job} to report the check job COMPLETED", cluster, "slurmdbd")
    except SlurmUnavailable as e:
        raise SlurmUnavailable(f"{e}\nlast sacct answer: {seen[0] if seen else '-'}"
                               f"\nslurmctld log:\n{cluster.log('slurmctld')}") from None


@contextlib.contextmanager
def single_node_slurm(partition: str = "debug", cpus: int | None = None, mem_mb: int = 2048,
                      accounting: bool = False) -> Iterator[SlurmCluster]:
    """A running SLURM cluster (see the module docstring); raises :class:`SlurmUnavailable` where there is none.

    ``accounting=True``: one whose ``sacct`` answers (a started one runs MariaDB and slurmdbd too)."""
    running = _answers()
    if running is not None:
        has_accounting = _sacct_answers(dict(os.environ))
        if accounting and not has_accounting:
            raise SlurmUnavailable("the running SLURM cluster (sinfo answers) has no accounting: sacct does not "
                                   "answer")
        yield SlurmCluster(env={}, partition=running[0], cpus=running[1], started=False,
                           accounting=has_accounting)
        return
    reason = missing_reason(accounting)
    if reason:
        raise SlurmUnavailable(reason)
    folder = Path(tempfile.mkdtemp(prefix="snnlib-slurm-"))
    cpus = int(cpus or os.cpu_count() or 1)
    cluster = SlurmCluster(env={}, partition=partition, cpus=cpus, started=True, folder=folder)
    procs: dict[str, subprocess.Popen] = {}
    old_env = {k: os.environ.get(k) for k in ("SLURM_CONF",)}
    try:
        for sub in ("etc", "log", "run", "state", "spool", "munge-key", "munge-run"):
            (folder / sub).mkdir()
        os.chmod(folder, 0o755)                      # munged: the socket's folder must be reachable by all
        os.chmod(folder / "munge-run", 0o755)
        os.chmod(folder / "munge-key", 0o700)        # munged: the key's folder must be private
        key = folder / "munge-key" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        sock = folder / "munge-run" / "munge.socket.2"
        _start(cluster, procs, "munged", [
            "munged", "-F", f"--key-file={key}", f"--socket={sock}", f"--pid-file={folder / 'run' / 'munged.pid'}",
            f"--log-file={folder / 'log' / 'munged.log'}", f"--seed-file={folder / 'munge-key' / 'munged.seed'}"])
        _wait(sock.exists, 10, "munged's socket", cluster, "munged")
        cred = _run(["munge", "-S", str(sock), "-n"])
        check = subprocess.run(["unmunge", "-S", str(sock)], input=cred.stdout, capture_output=True, text=True)
        if cred.returncode or check.returncode:
            raise SlurmUnavailable(f"munge round trip failed: {cred.stderr}{check.stderr}{cluster.log('munged')}")

        conf = folder / "etc" / "slurm.conf"
        ports: list[int] = []
        while len(ports) < (3 if accounting else 2):
            port = _free_port()
            if port not in ports:
                ports.append(port)
        ctld_port, d_port = ports[:2]
        dbd_port = ports[2] if accounting else None
        conf.write_text(_conf(folder, sock, ctld_port, d_port, cpus, mem_mb, partition, dbd_port))
        conf.chmod(0o644)
        cluster.env = {"SLURM_CONF": str(conf)}
        os.environ.update(cluster.env)               # client commands and submitit find the cluster here
        env = dict(os.environ)
        if dbd_port is not None:
            _start_accounting(cluster, procs, sock, dbd_port)

        _start(cluster, procs, "slurmctld", ["slurmctld", "-D", "-f", str(conf)])
        _wait(lambda: "UP" in _run(["scontrol", "ping"], env=env).stdout, 30, "slurmctld (scontrol ping)",
              cluster, "slurmctld")
        _start(cluster, procs, "slurmd", ["slurmd", "-D", "-f", str(conf), "-N", "localhost"])

        def node_up():
            state = _run(["sinfo", "-h", "-n", "localhost", "-o", "%T"], env=env).stdout.strip()
            if state.startswith(("down", "drain")):
                _run(["scontrol", "update", "nodename=localhost", "state=resume"], env=env)
            return state.startswith(("idle", "mixed", "allocated"))

        _wait(node_up, 60, "the node to be idle", cluster, "slurmd")
        if accounting:
            _check_accounting(cluster, env)
        cluster.accounting = _sacct_answers(env)
        yield cluster
    finally:
        if procs.get("slurmctld") is not None and procs["slurmctld"].poll() is None:
            _cancel_all(dict(os.environ))
        _stop(procs)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(folder, ignore_errors=True)


def _sacct_answers(env: dict[str, str]) -> bool:
    if shutil.which("sacct") is None:
        return False
    try:
        r = _run(["sacct", "-n", "-X", "-o", "JobID"], env=env)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and "disabled" not in (r.stdout + r.stderr)
