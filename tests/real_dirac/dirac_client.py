"""DIRAC's own client against the test server, in a process of its own (DIRAC's configuration is global to
a process; the other agent tests initialise DIRAC offline in the pytest process).

    python dirac_client.py CFG echo SITE TEXT OUTDIR TIMEOUT   # a plain DIRAC job, to Done, its output
                                                               # (TIMEOUT 0: submit only)
    python dirac_client.py CFG delete JOB_ID                   # Dirac().deleteJob
    python dirac_client.py CFG workload WORKER_SITE IDLE_SITE TIMEOUT SEED  # a small mixed workload
    python dirac_client.py CFG backend FOREIGN_JOB_ID PYZ      # the agents' dirac back-end, job at a site
                                                               # without worker node, then its errors

The proxy comes from X509_USER_PROXY. Prints one JSON object on the last line of stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time


def echo(site: str, text: str, outdir: str, timeout: float) -> dict:
    from DIRAC.Interfaces.API.Dirac import Dirac
    from DIRAC.Interfaces.API.Job import Job

    job = Job()
    job.setName("echo-test")
    job.setExecutable("/bin/echo", arguments=text)
    job.setDestination(site)
    result = Dirac().submitJob(job)
    if not result["OK"]:
        return {"submit_error": result["Message"]}
    job_id = int(result["Value"])
    if not timeout:
        return {"job_id": job_id}
    statuses: list[str] = []
    deadline = time.monotonic() + timeout
    final = None
    while time.monotonic() < deadline:
        answer = Dirac().getJobStatus(job_id)
        status = answer["Value"][job_id]["Status"] if answer["OK"] else f"error: {answer['Message']}"
        if not statuses or statuses[-1] != status:
            statuses.append(status)
        if status in ("Done", "Failed", "Killed"):
            final = status
            break
        time.sleep(1)
    out: dict = {"job_id": job_id, "statuses": statuses, "final": final, "files": {}}
    if final is None:
        return out
    sandbox = Dirac().getOutputSandbox(job_id, outputDir=outdir)
    out["sandbox_ok"] = sandbox["OK"]
    for root, _dirs, names in os.walk(outdir):
        for name in names:
            with open(os.path.join(root, name), errors="replace") as fh:
                out["files"][name] = fh.read(4096)
    params = Dirac().getJobParameters(job_id)
    out["parameters"] = params.get("Value") if params["OK"] else None
    out["parameters_error"] = None if params["OK"] else params["Message"]
    return out


def workload(worker: str, idle: str, timeout: float, seed: int) -> dict:
    """Jobs that succeed and fail at the worker site and jobs deleted while waiting at the idle site, all
    through DIRAC's services, in a seeded random order; returns {job ID: kind} once all are final."""
    import random

    from DIRAC.Interfaces.API.Dirac import Dirac
    from DIRAC.Interfaces.API.Job import Job

    rng = random.Random(seed)
    kinds = ["done", "failed", "done", "deleted", "deleted", "deleted"]
    rng.shuffle(kinds)
    jobs: dict[int, str] = {}
    for kind in kinds:
        job = Job()
        job.setName(f"fidelity-{kind}")
        if kind == "failed":
            job.setExecutable("/bin/false")
        else:
            job.setExecutable("/bin/echo", arguments=kind)
        job.setDestination(idle if kind == "deleted" else worker)
        result = Dirac().submitJob(job)
        if not result["OK"]:
            return {"submit_error": result["Message"]}
        jobs[int(result["Value"])] = kind
        time.sleep(rng.uniform(0.0, 1.0))
    deadline = time.monotonic() + timeout
    pending = dict(jobs)
    while pending and time.monotonic() < deadline:
        answer = Dirac().getJobStatus(list(pending))
        states = answer["Value"] if answer["OK"] else {}
        for jid, kind in list(pending.items()):
            status = (states.get(jid) or {}).get("Status")
            if kind == "deleted" and status == "Waiting" and rng.random() < 0.5:
                Dirac().deleteJob(jid)
            elif status in ("Done", "Failed", "Killed", "Deleted"):
                del pending[jid]
        time.sleep(rng.uniform(0.2, 1.0))
    return {"jobs": {str(k): v for k, v in jobs.items()}, "unfinished": sorted(pending)}


def backend(foreign_job: str, pyz: str) -> dict:
    """The agents' DiracBackend on the real WMS: a probe job at a site without worker node stays waiting,
    has no output sandbox, is killed and deleted; a job ID nobody has is Unknown; another user's job cannot
    be deleted (DIRAC's JobPolicy), which the back-end reports as one line."""
    from probe_pushgateway.agent.backends import BackendError, DiracBackend, NoOutput
    from probe_pushgateway.agent.diracjob import build_probe_job
    from probe_pushgateway.agent.targets import Target

    be = DiracBackend([sys.argv[1]])  # initialises DIRAC with the server's cfg and the proxy
    target = Target("BES.USTC.cn")
    probe = {"pyz": pyz, "config": None, "python": "python3", "args": [], "job_group": "bes_probe_be",
             "cpu_time": 900}
    job_id = be.submit(build_probe_job(target, probe, "http://127.0.0.1:9"), target)
    out: dict = {"job_id": job_id}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = be.status([job_id])[job_id]
        if state.status == "Waiting":
            break
        time.sleep(0.5)
    out["status"] = {"status": state.status, "site": state.site, "submitted": state.submitted,
                     "started": state.started}
    try:
        be.read_output(job_id, "bes-probe.log", 1 << 20)
        out["read_output"] = "no error"
    except NoOutput as exc:
        out["read_output"] = f"NoOutput: {exc}"
    be.kill(job_id)
    out["after_kill"] = be.status([job_id])[job_id].status
    out["unknown"] = be.status(["987654321"])["987654321"].status
    try:
        be.kill(foreign_job)
        out["foreign_kill"] = "no error"
    except BackendError as exc:
        out["foreign_kill"] = str(exc)
    out["foreign_status"] = be.status([foreign_job])[foreign_job].status
    return out


def main(argv: list[str]) -> int:
    if argv[1] == "echo":
        import DIRAC

        DIRAC.initialize(extra_config_files=[argv[0]])
        result = echo(argv[2], argv[3], argv[4], float(argv[5]))
    elif argv[1] == "workload":
        import DIRAC

        DIRAC.initialize(extra_config_files=[argv[0]])
        result = workload(argv[2], argv[3], float(argv[4]), int(argv[5]))
    elif argv[1] == "delete":
        import DIRAC

        DIRAC.initialize(extra_config_files=[argv[0]])
        from DIRAC.Interfaces.API.Dirac import Dirac

        answer = Dirac().deleteJob(int(argv[2]))
        result = {"ok": answer["OK"], "message": answer.get("Message")}
    elif argv[1] == "backend":
        result = backend(argv[2], argv[3])
    else:
        print(f"unknown command {argv[1]!r}", file=sys.stderr)
        return 2
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
