"""The IAM call check: record every AWS call a process makes, then check each against the
role it would run with on AWS. The emulator enforces no IAM, so this is what finds a call a
role does not allow (docs/aws-differences.md). Local tooling only: nothing here runs in
Lambda, and moto is imported only by `check`.

Recording. When `AWS_CALL_LOG` names a file, the clients built by the data plane's client
module (broker/functions/aws.py) and by the portal's (core/aws.py) append one JSON line per
API call to it (`record_from_env`):

    {"principal": "broker-egress", "service": "sqs", "operation": "SendMessageBatch",
     "action": "sqs:SendMessage", "resources": ["arn:aws:sqs:eu-west-1:123456789012:q"]}

The principal is "portal" for the portal's clients; for the data plane's, `AWS_CALL_PRINCIPAL`,
else `AWS_LAMBDA_FUNCTION_NAME`, else "dataplane". `install_recorder` does the same for any
client or session (the runner's own polling clients count against the function's role, as an
event source mapping's polling does on AWS). Lines are appended with O_APPEND, one write a
line, so processes and threads may share the file.

Checking. `role_policies` reads a role's policies as deployed in the emulator and normalises
what moto returns; `check` evaluates each call with moto's own evaluator
(`moto.iam.access_control.IAMPolicy`, no evaluator of ours) after normalising around its
limits (`EVALUATOR_LIMITS`); `report` says it per principal; `check_stack` does all of it
for a deployed stack's functions.
"""

import ast
import json
import os
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

LOG_ENV = "AWS_CALL_LOG"
PRINCIPAL_ENV = "AWS_CALL_PRINCIPAL"
ACCOUNT_ENV = "AWS_CALL_ACCOUNT"

# Operations IAM authorizes with another action than `<prefix>:<OperationName>`.
_ACTIONS = {
    ("sqs", "SendMessageBatch"): "sqs:SendMessage",
    ("sqs", "DeleteMessageBatch"): "sqs:DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "sqs:ChangeMessageVisibility",
    ("dynamodb", "TransactGetItems"): "dynamodb:GetItem",
    ("lambda", "Invoke"): "lambda:InvokeFunction",
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "ListObjects"): "s3:ListBucket",
}
# TransactWriteItems has no action of its own: IAM checks each item's.
_TRANSACT_WRITE = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
# Operations with no resource type in IAM: a policy must grant them on "*".
_NO_RESOURCE = {
    ("lambda", "CreateEventSourceMapping"),
    ("lambda", "ListEventSourceMappings"),
    ("lambda", "ListFunctions"),
    ("sqs", "ListQueues"),
    ("dynamodb", "ListTables"),
    ("kms", "ListKeys"),
    ("kms", "ListAliases"),
    ("kms", "CreateKey"),
}
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# --- recording -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    principal: str
    service: str
    operation: str
    action: str
    resources: tuple[str, ...]

    def as_dict(self) -> dict:
        return {
            "principal": self.principal,
            "service": self.service,
            "operation": self.operation,
            "action": self.action,
            "resources": list(self.resources),
        }


class _Sink:
    """Appends JSON lines to a file: O_APPEND and one write() a line, so concurrent writers
    (threads, processes) never interleave within a line."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)

    def __call__(self, record: dict) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


class _Recorder:
    def __init__(self, sink, *, principal: str, account: str | None, endpoint_url: str | None):
        self.sink = sink if callable(sink) else _Sink(sink)
        self.principal = principal
        self._account = account or os.environ.get(ACCOUNT_ENV) or None
        self._endpoint_url = endpoint_url
        self._lock = threading.Lock()

    def account(self, region: str) -> str:
        """The caller's account: given, `AWS_CALL_ACCOUNT`, or STS GetCallerIdentity once
        (a client of its own, not recorded: STS needs no permission for it)."""
        if self._account is None:
            with self._lock:
                if self._account is None:
                    import boto3

                    sts = boto3.session.Session().client(
                        "sts", region_name=region, endpoint_url=self._endpoint_url
                    )
                    self._account = sts.get_caller_identity()["Account"]
        return self._account

    def __call__(self, params=None, model=None, context=None, **_):
        if model is None:
            return
        region = (context or {}).get("client_region") or os.environ.get(
            "AWS_DEFAULT_REGION", "us-east-1"
        )
        for call in calls_of(
            service=model.service_model.signing_name or model.service_model.service_name,
            operation=model.name,
            params=params or {},
            region=region,
            account=lambda: self.account(region),
            principal=self.principal,
        ):
            self.sink(call.as_dict())


def install_recorder(
    session_or_client,
    sink,
    *,
    principal: str | None = None,
    account: str | None = None,
):
    """Records every API call of a boto3 client, or of every client a boto3/botocore session
    builds afterwards. `sink`: a file path (JSON lines appended) or a callable taking the
    record's dict. `principal` defaults to `default_principal()`. Returns its first argument."""
    endpoint = getattr(getattr(session_or_client, "meta", None), "endpoint_url", None)
    if endpoint is not None and re.search(r"\.amazonaws\.com(\.cn)?/?$", endpoint):
        endpoint = None  # real AWS: STS has its own endpoint
    recorder = _Recorder(
        sink,
        principal=principal or default_principal(),
        account=account,
        endpoint_url=endpoint or os.environ.get("AWS_ENDPOINT_URL") or None,
    )
    if hasattr(session_or_client, "meta"):  # a client
        register = session_or_client.meta.events.register
    elif hasattr(session_or_client, "events"):  # a boto3 session
        register = session_or_client.events.register
    else:  # a botocore session
        register = session_or_client.register
    # After provide-client-params, before serialisation: the parameters as the call sends them.
    register("before-parameter-build", recorder)
    return session_or_client


def default_principal(fallback: str = "dataplane") -> str:
    return os.environ.get(PRINCIPAL_ENV) or os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or fallback


def record_from_env(session_or_client, *, principal: str | None = None):
    """The hook of the client modules: records the client's calls to the file `AWS_CALL_LOG`
    names, when it is set (never in Lambda). `principal`: the caller's own fixed name (the
    portal passes "portal"); without it, `default_principal()`. Returns its argument."""
    path = os.environ.get(LOG_ENV)
    if path:
        install_recorder(session_or_client, path, principal=principal or default_principal())
    return session_or_client


def read_calls(path: str | os.PathLike) -> list[Call]:
    """The calls of a log file (a missing file is no call)."""
    p = Path(path)
    if not p.exists():
        return []
    return [_call(json.loads(line)) for line in p.read_text().splitlines() if line.strip()]


# --- what a call names ---------------------------------------------------------------------


def calls_of(*, service, operation, params, region, account, principal) -> list[Call]:
    """The IAM (action, resources) pairs one API call needs: one Call, or one per action for
    TransactWriteItems. `account` is a string or a function returning it (asked only when
    an ARN needs it)."""
    prefix = service.lower()
    acct = account if callable(account) else (lambda: account)
    if (prefix, operation) == ("dynamodb", "TransactWriteItems"):
        by_action: dict[str, list[str]] = {}
        for item in params.get("TransactItems") or []:
            for kind, action in _TRANSACT_WRITE.items():
                if kind in item:
                    arn = _table_arn(region, acct(), item[kind].get("TableName", "*"))
                    by_action.setdefault(action, [])
                    if arn not in by_action[action]:
                        by_action[action].append(arn)
        return [
            Call(principal, prefix, operation, action, tuple(arns))
            for action, arns in by_action.items()
        ]
    action = _ACTIONS.get((prefix, operation), f"{prefix}:{operation}")
    return [
        Call(
            principal,
            prefix,
            operation,
            action,
            tuple(resources_of(prefix, operation, params, region=region, account=acct)),
        )
    ]


def resources_of(prefix: str, operation: str, params: Mapping, *, region: str, account) -> list:
    """The ARNs an API call names, from its parameters; ["*"] when it names none IAM knows."""
    acct = account if callable(account) else (lambda: account)
    if (prefix, operation) in _NO_RESOURCE:
        return ["*"]
    finder = _FINDERS.get(prefix)
    found = finder(operation, params, region, acct) if finder else []
    return list(dict.fromkeys(found)) or ["*"]


def _sqs(operation, params, region, account):
    if url := params.get("QueueUrl"):
        return [queue_arn_from_url(url, region=region)]
    if name := params.get("QueueName"):
        owner = params.get("QueueOwnerAWSAccountId") or account()
        return [f"arn:aws:sqs:{region}:{owner}:{name}"]
    return []


def queue_arn_from_url(url: str, *, region: str) -> str:
    """https://sqs.<region>.amazonaws.com/<account>/<name>, or the emulator's
    http://127.0.0.1:PORT/<account>/<name>, as an ARN."""
    parsed = urlparse(url)
    account, _, name = parsed.path.strip("/").partition("/")
    host = re.match(r"^(?:sqs\.)?([a-z]{2}(?:-[a-z]+)+-\d)\.", parsed.hostname or "")
    return f"arn:aws:sqs:{host.group(1) if host else region}:{account}:{name}"


def _table_arn(region, account, name: str, index: str | None = None) -> str:
    if name.startswith("arn:"):
        arn = name
    else:
        arn = f"arn:aws:dynamodb:{region}:{account}:table/{name}"
    return f"{arn}/index/{index}" if index else arn


def _dynamodb(operation, params, region, account):
    if items := params.get("RequestItems"):  # BatchGetItem, BatchWriteItem
        return [_table_arn(region, account(), name) for name in items]
    if (items := params.get("TransactItems")) is not None:  # TransactGetItems
        return [_table_arn(region, account(), i["Get"]["TableName"]) for i in items if "Get" in i]
    if name := params.get("TableName"):
        return [_table_arn(region, account(), name, params.get("IndexName"))]
    if arn := params.get("ResourceArn"):
        return [arn]
    return []


def _kms(operation, params, region, account):
    key = params.get("KeyId")
    if not key and operation == "Decrypt":
        key = _key_in_ciphertext(params.get("CiphertextBlob"))
    if not key:
        return []
    if key.startswith("arn:"):
        return [key]
    if key.startswith("alias/"):
        return [f"arn:aws:kms:{region}:{account()}:{key}"]
    return [f"arn:aws:kms:{region}:{account()}:key/{key}"]


def _key_in_ciphertext(blob) -> str | None:
    """The key id of a ciphertext moto made (its first 36 bytes; AWS's format is opaque, so
    a Decrypt without KeyId names no key outside the emulator)."""
    if isinstance(blob, str):
        blob = blob.encode()
    if isinstance(blob, bytes | bytearray) and _UUID.fullmatch(bytes(blob[:36])):
        return bytes(blob[:36]).decode()
    return None


def _secretsmanager(operation, params, region, account):
    secret = params.get("SecretId") or params.get("Name")
    if not secret:
        return []
    if secret.startswith("arn:"):
        return [secret]
    # A secret's ARN ends in "-" and six random characters (IAM's ? matches one).
    return [f"arn:aws:secretsmanager:{region}:{account()}:secret:{secret}-??????"]


def _lambda(operation, params, region, account):
    if operation in (
        "GetEventSourceMapping",
        "UpdateEventSourceMapping",
        "DeleteEventSourceMapping",
    ):
        uuid = params.get("UUID", "*")
        return [f"arn:aws:lambda:{region}:{account()}:event-source-mapping:{uuid}"]
    name = params.get("FunctionName")
    if not name:
        return []
    if name.startswith("arn:"):
        arn = name
    else:
        parts = name.split(":")  # name, name:qualifier, account:function:name[:qualifier]
        if len(parts) >= 3 and parts[1] == "function":
            owner, fname, qualifier = parts[0], parts[2], parts[3] if len(parts) > 3 else None
        else:
            owner, fname, qualifier = account(), parts[0], parts[1] if len(parts) > 1 else None
        arn = f"arn:aws:lambda:{region}:{owner}:function:{fname}"
        if qualifier:
            arn += f":{qualifier}"
    if qualifier := params.get("Qualifier"):
        arn += f":{qualifier}"
    return [arn]


def _logs(operation, params, region, account):
    group = params.get("logGroupName")
    if not group:
        return []
    arn = f"arn:aws:logs:{region}:{account()}:log-group:{group}"
    if stream := params.get("logStreamName"):
        return [f"{arn}:log-stream:{stream}"]
    return [arn]


def _s3(operation, params, region, account):
    bucket = params.get("Bucket")
    if not bucket:
        return []
    key = params.get("Key")
    return [f"arn:aws:s3:::{bucket}/{key}" if key is not None else f"arn:aws:s3:::{bucket}"]


_FINDERS = {
    "sqs": _sqs,
    "dynamodb": _dynamodb,
    "kms": _kms,
    "secretsmanager": _secretsmanager,
    "lambda": _lambda,
    "logs": _logs,
    "s3": _s3,
}


# --- policies as deployed ------------------------------------------------------------------


def parse_policy_document(document) -> dict:
    """A policy document as IAM (or moto) returns it, as a dict: JSON, URL-encoded JSON, or
    the Python repr moto returns for a role made by CloudFormation."""
    if isinstance(document, Mapping):
        return dict(document)
    text = str(document)
    for candidate in (text, unquote(text)):
        try:
            return json.loads(candidate)
        except ValueError:
            pass
        try:
            parsed = ast.literal_eval(candidate)
        except (ValueError, SyntaxError):
            continue
        if isinstance(parsed, dict):
            return parsed
    raise ValueError(f"not a policy document: {text[:80]!r}")


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def normalise_policy(document) -> dict:
    """The document with Statement a list of dicts (a statement that came back as None, an
    `AWS::NoValue`, dropped) and Action, NotAction, Resource, NotResource as lists."""
    doc = parse_policy_document(document)
    statements = []
    for statement in _as_list(doc.get("Statement")):
        if not isinstance(statement, Mapping):
            continue
        s = dict(statement)
        for key in ("Action", "NotAction", "Resource", "NotResource"):
            if key in s:
                s[key] = [str(v) for v in _as_list(s[key])]
        statements.append(s)
    return {**doc, "Statement": statements}


def role_policies(iam_client, role_name: str) -> list[dict]:
    """The role's inline policies and the default versions of its attached managed
    policies, normalised (`normalise_policy`)."""
    out = []
    for page in iam_client.get_paginator("list_role_policies").paginate(RoleName=role_name):
        for name in page["PolicyNames"]:
            doc = iam_client.get_role_policy(RoleName=role_name, PolicyName=name)
            out.append(normalise_policy(doc["PolicyDocument"]))
    pages = iam_client.get_paginator("list_attached_role_policies").paginate(RoleName=role_name)
    for page in pages:
        for attached in page["AttachedPolicies"]:
            arn = attached["PolicyArn"]
            version = iam_client.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
            doc = iam_client.get_policy_version(PolicyArn=arn, VersionId=version)
            out.append(normalise_policy(doc["PolicyVersion"]["Document"]))
    return out


# --- the check -----------------------------------------------------------------------------

# What moto 5.2.5's IAMPolicy does differently from IAM, and what `check` does about it
# (docs/aws-differences.md holds the same list; tests/functions/test_iam_check.py shows each).
EVALUATOR_LIMITS = (
    "actions are matched case-sensitively: both sides are lower-cased before evaluation",
    "patterns are regular expressions with * made .*: other regex characters are escaped and "
    "IAM's ? becomes one character before evaluation",
    "a statement of None (AWS::NoValue) makes it raise: dropped by normalise_policy",
    "NotResource is not read (such a statement applies to every resource, even a Deny): "
    "check refuses such a policy (UnsupportedPolicy)",
    "conditions: only StringEquals is evaluated, and only on the keys it is given; check gives "
    "none, so every condition counts as met (a conditional Allow allows, a conditional Deny "
    "denies)",
    "policy variables (${aws:...}) are not substituted: they match only themselves",
    "one policy at a time: check combines them (denied when any policy denies, allowed when "
    "some policy allows)",
)


class UnsupportedPolicy(ValueError):
    """A policy moto's evaluator would get wrong (NotResource)."""


@dataclass(frozen=True)
class Denied:
    principal: str
    action: str
    resource: str
    operation: str
    reason: str  # "no statement allows it", "denied explicitly", "no role known"
    count: int = 1

    def __str__(self) -> str:
        times = f" ({self.count} calls)" if self.count > 1 else ""
        return f"{self.principal}: {self.action} on {self.resource}: {self.reason}{times}"


def _pattern(value: str) -> str:
    """An IAM wildcard pattern in the form moto's matcher reads as IAM does: it only turns
    * into .*, so the other regular-expression characters are escaped here and ? (one
    character in IAM) becomes '.'."""
    out = []
    for ch in value:
        if ch == "*":
            out.append("*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return "".join(out)


def _for_moto(policy: dict) -> str:
    statements = []
    for s in normalise_policy(policy)["Statement"]:
        if "NotResource" in s:
            raise UnsupportedPolicy(f"NotResource is not evaluated by moto: {s.get('Sid', s)}")
        s = dict(s)
        for key in ("Action", "NotAction"):
            if key in s:
                s[key] = [_pattern(a.lower()) for a in s[key]]
        if "Resource" in s:
            s["Resource"] = [_pattern(r) for r in s["Resource"]]
        statements.append(s)
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _decide(evaluators, action: str, resource: str) -> str | None:
    """None when allowed, else the reason."""
    from moto.iam.access_control import PermissionResult

    allowed = False
    for evaluator in evaluators:
        result = evaluator.is_action_permitted(action.lower(), resource)
        if result == PermissionResult.DENIED:
            return "denied explicitly"
        if result == PermissionResult.PERMITTED:
            allowed = True
    return None if allowed else "no statement allows it"


def check(calls: Iterable[Call | Mapping], policies) -> list[Denied]:
    """The calls their principal's policies do not allow, one Denied per (principal, action,
    resource) with the number of such calls. `policies`: a list of policy documents for every
    call, or {principal: [documents]} (a principal missing from it is denied: "no role
    known"). A call is allowed when some policy allows each of its resources and none denies
    it."""
    from moto.iam.access_control import IAMPolicy

    by_principal = policies if isinstance(policies, Mapping) else None
    cache: dict[str, list] = {}

    def evaluators(principal: str):
        if principal not in cache:
            docs = by_principal.get(principal) if by_principal is not None else policies
            cache[principal] = None if docs is None else [IAMPolicy(_for_moto(d)) for d in docs]
        return cache[principal]

    counts: Counter = Counter()
    for raw in calls:
        call = raw if isinstance(raw, Call) else _call(raw)
        found = evaluators(call.principal)
        for resource in call.resources or ("*",):
            reason = "no role known" if found is None else _decide(found, call.action, resource)
            if reason:
                counts[(call.principal, call.action, resource, call.operation, reason)] += 1
    return [Denied(*key, count=n) for key, n in sorted(counts.items())]


def _call(d: Mapping) -> Call:
    return Call(
        d["principal"], d["service"], d["operation"], d["action"], tuple(d.get("resources") or ())
    )


def report(calls: Iterable[Call | Mapping], denied: Iterable[Denied]) -> str:
    """Per principal: calls recorded, distinct actions, denied; then every denied call."""
    calls = [c if isinstance(c, Call) else _call(c) for c in calls]
    denied = list(denied)
    principals = sorted({c.principal for c in calls} | {d.principal for d in denied})
    lines = ["IAM check: principal, calls, distinct actions, denied"]
    for p in principals:
        mine = [c for c in calls if c.principal == p]
        n_denied = sum(d.count for d in denied if d.principal == p)
        lines.append(
            f"  {p}: {len(mine)} calls, {len({c.action for c in mine})} actions, {n_denied} denied"
        )
    if denied:
        lines.append("Denied:")
        lines += [f"  {d}" for d in denied]
    return "\n".join(lines)


# --- a deployed stack ----------------------------------------------------------------------


@dataclass
class StackCheck:
    calls: list[Call]
    denied: list[Denied]
    roles: dict[str, str] = field(default_factory=dict)  # principal → role name

    @property
    def ok(self) -> bool:
        return not self.denied

    def report(self) -> str:
        return report(self.calls, self.denied)


def function_roles(*, cloudformation, lambda_client, stack_name: str) -> dict[str, str]:
    """{principal: role name} for the stack's functions: each function's name and its logical
    id name the same role (the Role ARN of GetFunctionConfiguration)."""
    roles = {}
    paginator = cloudformation.get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=stack_name):
        for r in page["StackResourceSummaries"]:
            if r["ResourceType"] != "AWS::Lambda::Function":
                continue
            conf = lambda_client.get_function_configuration(FunctionName=r["PhysicalResourceId"])
            role = conf["Role"].rsplit("/", 1)[-1]
            roles[conf["FunctionName"]] = role
            roles[r["LogicalResourceId"]] = role
    return roles


def check_stack(
    calls: str | os.PathLike | Iterable[Call | Mapping],
    *,
    cloudformation,
    lambda_client,
    iam_client,
    stack_name: str,
    principals: Mapping[str, str] | None = None,
    extra_policies: Mapping[str, list[dict]] | None = None,
) -> StackCheck:
    """Checks a call log (a path, or calls) against the roles of a deployed stack's functions.

    Principals are the functions' names or logical ids (`function_roles`); `principals` maps
    other names to a function name or logical id (e.g. {"egress": "EgressFunction"});
    `extra_policies` gives principals their policies directly (e.g. {"portal":
    [fill_policy(...)]}, see `portal_policy`)."""
    if isinstance(calls, str | os.PathLike):
        calls = read_calls(calls)
    calls = [c if isinstance(c, Call) else _call(c) for c in calls]
    roles = function_roles(
        cloudformation=cloudformation, lambda_client=lambda_client, stack_name=stack_name
    )
    for alias, target in (principals or {}).items():
        if target in roles:
            roles[alias] = roles[target]
    loaded = {role: role_policies(iam_client, role) for role in set(roles.values())}
    policies = {p: loaded[role] for p, role in roles.items()}
    policies.update(extra_policies or {})
    return StackCheck(calls=calls, denied=check(calls, policies), roles=roles)


# --- the portal's policy -------------------------------------------------------------------

PORTAL_POLICY = Path(__file__).resolve().parents[3] / "deploy" / "portal-policy.json"
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9:]+)\}")


def fill_policy(document: Mapping | str, values: Mapping[str, str]) -> dict:
    """The document with each `${Name}` replaced by values[Name] (CloudFormation's !Sub
    names: `AWS::AccountId`, `AWS::Region`, `AWS::Partition`, the template's parameters).
    A resource that comes out empty (an unset optional parameter) is dropped, and a
    statement left with none. An unknown name is an error."""
    doc = parse_policy_document(document) if not isinstance(document, Mapping) else document

    def sub(text: str) -> str:
        def one(m):
            if m.group(1) not in values:
                raise KeyError(f"no value for ${{{m.group(1)}}}")
            return str(values[m.group(1)])

        return _PLACEHOLDER.sub(one, text)

    statements = []
    for statement in normalise_policy(doc)["Statement"]:
        s = json.loads(sub(json.dumps(statement)))
        if "Resource" in s:
            s["Resource"] = [r for r in s["Resource"] if r]
            if not s["Resource"]:
                continue
        statements.append(s)
    return {"Version": doc.get("Version", "2012-10-17"), "Statement": statements}


def portal_policy(**values: str) -> dict:
    """deploy/portal-policy.json filled (`fill_policy`): pass AWS__AccountId, AWS__Region,
    AWS__Partition (or the names with "::" as a dict to fill_policy), QueuePrefix, StackName,
    ConfigTableName, DataplaneTableName, SecretsKmsKeyArn, TenantQueuePrefix."""
    names = {k.replace("__", "::"): v for k, v in values.items()}
    names.setdefault("AWS::Partition", "aws")
    return fill_policy(json.loads(PORTAL_POLICY.read_text()), names)


# --- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """python -m broker.functions.local.iam CALL_LOG --stack NAME [--alias egress=EgressFunction]

    Checks a call log against the roles of a stack deployed in the emulator (AWS_ENDPOINT_URL)
    or in AWS; prints the report; exits 1 when a call is denied."""
    import argparse

    import boto3

    parser = argparse.ArgumentParser(prog="python -m broker.functions.local.iam")
    parser.add_argument("log", help="the AWS_CALL_LOG file")
    parser.add_argument("--stack", required=True, help="the data plane's stack name")
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "eu-west-1"))
    parser.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL") or None)
    parser.add_argument(
        "--alias", action="append", default=[], help="principal=function name or logical id"
    )
    args = parser.parse_args(argv)
    session = boto3.session.Session(region_name=args.region)

    def client(service):
        return session.client(service, endpoint_url=args.endpoint_url)

    result = check_stack(
        args.log,
        cloudformation=client("cloudformation"),
        lambda_client=client("lambda"),
        iam_client=client("iam"),
        stack_name=args.stack,
        principals=dict(a.split("=", 1) for a in args.alias),
    )
    print(result.report())
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
