"""A FAKE DIRAC server for the agents' tests, kept only for what the real one cannot be made to produce.

The real DIRAC 9.1 server (scripts/dirac-server.sh, tests/real_dirac) covers the working paths. This fake
remains for: an S_ERROR or exception from one chosen call (``fail``, ``explode``), DIRAC v6-v8's JobDB
(what BES3 runs: the ``dirac`` fixture's 8.0 generation) and probe jobs hours old (reaper timeouts).
It stands in only for the remote side of DIRAC's clients: the JobManager, JobMonitoring and
SandboxStore services. Everything on the client side is DIRAC's real code: ``Dirac`` (the API the
agent calls), the real ``WMSClient`` (JDL checks, input sandbox packing) and ``SandboxStoreClient``,
built with this fake's RPC/transfer stand-ins. Jobs are written into a real MariaDB JobDB through
the project's DiracWriter, the way DIRAC's services write them.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field

import DIRAC.Interfaces.API.Dirac as dirac_api
import DIRAC.WorkloadManagementSystem.Client.SandboxStoreClient as sandbox_client
from agent_fixtures import OWNER, OWNER_GROUP  # the agents' identity: DIRAC writes it from their proxy
from DIRAC import S_ERROR, S_OK
from DIRAC.Core.Utilities.ClassAd.ClassAdLight import ClassAd
from DIRAC.WorkloadManagementSystem.Client.SandboxStoreClient import SandboxStoreClient as RealSandboxStoreClient
from DIRAC.WorkloadManagementSystem.Client.WMSClient import WMSClient


@dataclass
class FakeDiracServer:
    """The fake services' state; ``calls`` records every RPC by name."""

    inst: object  # tests.conftest.DiracInstance
    errors: dict = field(default_factory=dict)
    raises: dict = field(default_factory=dict)
    calls: list = field(default_factory=list)
    sandboxes: list = field(default_factory=list)

    def fail(self, call: str, message: str = "fake server: service unavailable") -> None:
        """Make ``call`` answer S_ERROR(message) from now on (``None`` message: answer normally again)."""
        if message is None:
            self.errors.pop(call, None)
        else:
            self.errors[call] = message

    def explode(self, call: str, exc: Exception) -> None:
        """Make ``call`` raise ``exc`` (a DIRAC client bug or a broken connection)."""
        self.raises[call] = exc

    def handle(self, call: str, *args):
        self.calls.append(call)
        if call in self.raises:
            raise self.raises[call]
        if call in self.errors:
            return S_ERROR(self.errors[call])
        return getattr(self, f"do_{call}")(*args)

    # ---- JobManager ------------------------------------------------------------------------------

    def do_submitJob(self, jdl: str):
        ad = ClassAd(jdl)
        if not ad.isOK():
            return S_ERROR("Invalid job JDL")
        sites = ad.getListFromExpression("Site")
        site = sites[0] if len(sites) == 1 else ("Multiple" if sites else "ANY")
        job_id = self.inst.writer.submit(site=site, job_group=ad.getAttributeString("JobGroup"),
                                         job_name=ad.getAttributeString("JobName"), owner=OWNER,
                                         owner_group=OWNER_GROUP)
        result = S_OK(job_id)
        result["JobID"] = job_id
        return result

    def do_killJob(self, ids, force=False):
        ids = [ids] if isinstance(ids, int) else list(ids)
        for jid in ids:
            self.inst.writer.kill(int(jid))
        return S_OK(ids)

    def do_deleteJob(self, ids, force=False):
        ids = [ids] if isinstance(ids, int) else list(ids)
        for jid in ids:
            self.inst.writer.delete(int(jid))
        return S_OK(ids)

    # ---- JobMonitoring ---------------------------------------------------------------------------

    def _attrs(self, ids, cols):
        ids = [int(ids)] if isinstance(ids, (int, str)) else [int(i) for i in ids]
        if not ids:
            return S_OK({})
        rows = self.inst.query(
            f"SELECT JobID, {', '.join(cols)} FROM `{self.inst.dbs.jobdb}`.Jobs"
            f" WHERE JobID IN ({', '.join(['%s'] * len(ids))})", ids)
        return S_OK({r[0]: {c: str(v) for c, v in zip(cols, r[1:])} for r in rows})

    def do_getJobsStatus(self, ids):
        return self._attrs(ids, ["Status"])

    def do_getJobsSummary(self, ids):
        return self._attrs(ids, ["Status", "MinorStatus", "ApplicationStatus", "Site", "JobGroup", "JobName",
                                 "Owner", "SubmissionTime", "LastUpdateTime", "HeartBeatTime"])

    def do_getSandboxesAssignedToEntity(self, entity):
        return S_OK({})  # the fake stores no output sandboxes: every job is one whose sandbox was lost

    # ---- SandboxStore (transfer) -----------------------------------------------------------------

    def do_sendFile(self, path, args):
        with tarfile.open(path, "r:bz2") as tf:
            self.sandboxes.append(sorted(tf.getnames()))
        return S_OK(f"SB:FakeSandboxSE|/fake/{args[0]}")


class _RPC:
    """Stand-in for one service's RPC client: every method call goes to the fake server."""

    def __init__(self, server: FakeDiracServer) -> None:
        self._server = server

    def __getattr__(self, name: str):
        return lambda *args, **kw: self._server.handle(name, *args)


def install(server: FakeDiracServer, monkeypatch) -> FakeDiracServer:
    """Point DIRAC's ``Dirac`` API at the fake services (real WMSClient/SandboxStoreClient around them)."""
    rpc = _RPC(server)

    def wms_client(*args, useCertificates=False, **kw):
        return WMSClient(jobManagerClient=rpc, sbRPCClient=rpc, sbTransferClient=rpc,
                         useCertificates=useCertificates)

    monkeypatch.setattr(dirac_api, "WMSClient", wms_client)
    monkeypatch.setattr(dirac_api, "JobMonitoringClient", lambda *a, **kw: rpc)
    monkeypatch.setattr(sandbox_client, "SandboxStoreClient",
                        lambda *a, **kw: RealSandboxStoreClient(rpcClient=rpc, transferClient=rpc))
    return server
