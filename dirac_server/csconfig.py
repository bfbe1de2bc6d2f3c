"""The instance's DIRAC configuration: the Configuration Server's data, and the local files of the
server processes, of a client and of each worker node.

Every service section starts from the ``ConfigTemplate.cfg`` DIRAC ships with its system (the
defaults DIRAC's own installer uses), with the port, loopback URL and a few options set here.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from diraccfg import CFG

from . import topology as topo
from .certs import subject_dn
from .layout import Layout, State

# The services a probe job needs, all DISET (dips) in one process (DIRAC's ServiceReactor runs several).
SERVICES = (
    "Framework/ProxyManager",
    "ResourceStatus/ResourceStatus",
    "WorkloadManagement/JobManager",
    "WorkloadManagement/JobMonitoring",
    "WorkloadManagement/JobStateUpdate",
    "WorkloadManagement/SandboxStore",
    "WorkloadManagement/Matcher",
    "WorkloadManagement/OptimizationMind",
    "WorkloadManagement/PilotManager",
    "WorkloadManagement/WMSAdministrator",
)
CS_SERVICE = "Configuration/Server"
# DIRAC databases -> their system. Tables: from DIRAC's .sql where it has one, else DIRAC's DB class
# creates them when a service first opens the database.
DATABASES = {
    "JobDB": "WorkloadManagement",
    "JobLoggingDB": "WorkloadManagement",
    "PilotAgentsDB": "WorkloadManagement",
    "TaskQueueDB": "WorkloadManagement",
    "SandboxMetadataDB": "WorkloadManagement",
    "ProxyDB": "Framework",
    "ResourceStatusDB": "ResourceStatus",
}
HOST_NAME = "localhost"
HOST_PROPERTIES = ("TrustedHost", "CSAdministrator", "JobAdministrator", "FullDelegation", "ProxyManagement",
                   "Operator", "SiteManager", "ServiceAdministrator")
# JobAgent: poll every second; after a few empty matches the pilot ends and a new one starts (pilots.py),
# so a new job waits seconds, not the growing back-off of a long-lived JobAgent.
JOB_AGENT = {"PollingTime": "1", "StopAfterFailedMatches": "3", "SubmissionDelay": "0", "FillingModeFlag": "true",
             "StopOnApplicationFailure": "false"}
CLOSED_PORT = 9  # "discard": nothing listens; OpenSearch is pointed here (see docs/dirac-server.md)


def url(service: str, port: int) -> str:
    return f"dips://127.0.0.1:{port}/{service}"


def template(system: str) -> CFG:
    """DIRAC's ConfigTemplate.cfg of ``system`` (e.g. WorkloadManagement)."""
    text = files("DIRAC").joinpath(f"{system}System", "ConfigTemplate.cfg").read_text()
    cfg = CFG()
    cfg.loadFromBuffer(text)
    return cfg


def _section(cfg: CFG, path: str) -> CFG:
    for part in path.strip("/").split("/"):
        cfg = cfg[part] if cfg.isSection(part) else cfg.createNewSection(part)
    return cfg


def _set(cfg: CFG, path: str, values: dict) -> None:
    sec = _section(cfg, path)
    for key, value in values.items():
        if isinstance(value, dict):
            _set(sec, key, value)
        else:
            sec.setOption(key, value if isinstance(value, str) else str(value))


def _service_section(system: str, name: str, port: int, extra: dict) -> CFG:
    tpl = template(system)
    section = CFG()
    if tpl.isSection("Services") and tpl["Services"].isSection(name):
        section = tpl["Services"][name].clone()
    section.setOption("Port", str(port))
    section.setOption("Protocol", "dips")
    if section.isOption("HandlerPath") and "Tornado" in section["HandlerPath"]:
        section.deleteKey("HandlerPath")
    for key, value in extra.items():
        section.setOption(key, value)
    return section


def cs_data(layout: Layout, state: State, host_dn: str, version: str) -> CFG:
    """The Configuration Server's data (etc/<CS name>.cfg): registry, sites, operations, systems."""
    cfg = CFG()
    _set(cfg, "DIRAC", {"VirtualOrganization": topo.VO,
                        "Configuration": {"Name": cs_name(state), "Version": "2024-01-01 00:00:00.000000",
                                          "Servers": url(CS_SERVICE, state.ports[CS_SERVICE])}})
    users = {u: {"DN": subject_dn(u), "Email": f"{u}@localhost"} for u in (topo.USER, topo.PROBE_USER,
                                                                           topo.PILOT_USER)}
    groups = {
        topo.USER_GROUP: {"Users": topo.USER, "Properties": "NormalUser", "VO": topo.VO},
        topo.PROBE_GROUP: {"Users": topo.PROBE_USER, "Properties": "NormalUser", "VO": topo.VO},
        topo.PILOT_GROUP: {"Users": topo.PILOT_USER, "Properties": "GenericPilot, LimitedDelegation",
                           "VO": topo.VO},
    }
    _set(cfg, "Registry", {"DefaultGroup": topo.USER_GROUP, "DefaultProxyLifeTime": "86400",
                           "VO": {topo.VO: {"VOAdmin": topo.USER, "DefaultGroup": topo.USER_GROUP}},
                           "Users": users, "Groups": groups,
                           "Hosts": {HOST_NAME: {"DN": host_dn, "Properties": ", ".join(HOST_PROPERTIES)}}})
    for site in topo.SITES:
        _set(cfg, f"Resources/Sites/{site.grid}/{site.name}", {
            "Name": site.name, "CE": site.ce,
            "CEs": {site.ce: {"CEType": "InProcess", "Queues": {topo.QUEUE: {
                "maxCPUTime": str(topo.QUEUE_CPU_SECONDS // 60), "SI00": "1000"}}}}})
    # The sandbox "SE": DIRAC's DIP storage plugin talking to the SandboxStore service (its file transfer
    # takes the path after the service name as the sandbox's PFN).
    sandbox_store = "WorkloadManagement/SandboxStore"
    _set(cfg, f"Resources/StorageElements/{topo.SANDBOX_SE}", {
        "BackendType": "DISET", "AccessProtocol": "dips",
        "DIP": {"Host": "127.0.0.1", "Port": str(state.ports[sandbox_store]), "ProtocolName": "DIP",
                "Protocol": "dips", "Access": "remote", "Path": f"/{sandbox_store}"}})
    # No DiracX here: the VO is one DIRAC serves itself (else proxies get a DiracX token from /DiracX/URL).
    _set(cfg, "DiracX", {"DisabledVOs": topo.VO})
    _set(cfg, "Operations/Defaults", {
        "Pilot": {"Version": version},  # the Matcher checks each JobAgent's DIRAC version against it
        # No Accounting or Monitoring system runs here: DIRAC clients send no data-operation records
        # (else every sandbox transfer logs a failed commit and a failed ReqManager failover).
        "MonitoringBackends": {"Default": ""},
    })
    systems = _section(cfg, "Systems")
    _set(systems, "Databases", {"Host": state.db_host, "Port": str(state.db_port), "User": state.db_user,
                                "Password": ""})
    # OpenSearch (DIRAC 9's JobParametersDB) cannot run here: pointed at a closed loopback port.
    _set(systems, "NoSQLDatabases", {"Host": "127.0.0.1", "Port": str(CLOSED_PORT), "User": "none",
                                     "Password": "none", "SSL": "False"})
    for logical, system in DATABASES.items():
        _set(systems, f"{system}/Databases/{logical}", {"DBName": state.databases[logical]})
    _section(systems, "Configuration/Services").createNewSection("Server", contents=_cs_service(state))
    _set(systems, "Configuration/URLs", {"Server": url(CS_SERVICE, state.ports[CS_SERVICE])})
    for full in SERVICES:
        system, name = full.split("/")
        extra = {}
        if full == "WorkloadManagement/SandboxStore":
            extra = {"BasePath": str(layout.sandboxes), "LocalSE": topo.SANDBOX_SE}
        services = _section(systems, f"{system}/Services")
        services.createNewSection(name, contents=_service_section(system, name, state.ports[full], extra))
        _set(systems, f"{system}/URLs", {name: url(full, state.ports[full])})
    wms = template("WorkloadManagement")
    executors = wms["Executors"].clone()
    _section(systems, "WorkloadManagement").createNewSection("Executors", contents=executors)
    agents = _section(systems, "WorkloadManagement/Agents")
    job_agent = wms["Agents"]["JobAgent"].clone()
    for key, value in JOB_AGENT.items():
        job_agent.setOption(key, value)
    agents.createNewSection("JobAgent", contents=job_agent)
    return cfg


def _cs_service(state: State) -> CFG:
    """The master CS's service section. DIRAC 9 serves it with Tornado (https) by default; its DISET
    handler still ships and is used here, like every other service."""
    return _service_section("Configuration", "Server", state.ports[CS_SERVICE], {
        "HandlerPath": "DIRAC/ConfigurationSystem/Service/ConfigurationHandler.py"})


def cs_name(state: State) -> str:
    return f"{topo.SETUP_NAME}-{state.tag}"


def server_local(layout: Layout, state: State) -> CFG:
    """etc/dirac.cfg of the server processes: the master CS, the host certificate."""
    cfg = CFG()
    _set(cfg, "DIRAC", {
        "VirtualOrganization": topo.VO,
        "Hostname": "127.0.0.1",  # the services' own URLs (else the machine's FQDN)
        "Configuration": {"Name": cs_name(state), "Master": "yes",
                          "Servers": url(CS_SERVICE, state.ports[CS_SERVICE])},
        "Security": {"UseServerCertificate": "yes", "CertFile": str(layout.host_cert),
                     "KeyFile": str(layout.host_key), "CALocation": str(layout.certificates)},
    })
    _set(cfg, "LocalSite", {"Site": "DIRAC.Server.local"})
    # The master CS checks its own options before it loads its data: they must be local.
    _section(cfg, "Systems/Configuration/Services").createNewSection("Server", contents=_cs_service(state))
    return cfg


def client_local(layout: Layout, state: State) -> CFG:
    """The dirac.cfg of a client (a user's or the probe agents'): where the CS is, which CAs to trust."""
    cfg = CFG()
    _set(cfg, "DIRAC", {
        "VirtualOrganization": topo.VO,
        "Configuration": {"Servers": url(CS_SERVICE, state.ports[CS_SERVICE])},
        "Security": {"UseServerCertificate": "no", "CALocation": str(layout.certificates)},
    })
    return cfg


def worker_local(layout: Layout, state: State, site: topo.Site, pilot_reference: str) -> CFG:
    """etc/dirac.cfg of a worker node (what a pilot writes before starting its JobAgent)."""
    cfg = client_local(layout, state)
    _set(cfg, "LocalSite", {
        "Site": site.name, "GridCE": site.ce, "CEQueue": topo.QUEUE, "LocalCE": "InProcess",
        "CPUTimeLeft": str(10 ** 7), "CPUNormalizationFactor": "0", "PilotReference": pilot_reference,
        "InstancePath": str(layout.pilot_root(site.name)),
        # No Accounting system here: the job wrapper sends no accounting record (else it tries the DataStore,
        # then a failover request to the absent ReqManager, holding the JobAgent for seconds per job).
        "DisableAccounting": "True",
    })
    return cfg


def write(cfg: CFG, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(cfg.serialize()))
