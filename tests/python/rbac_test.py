"""The Python `kubernetes` client (PyPI), unchanged, under skiff's RBAC.

As the admin: a namespace, a ServiceAccount, a Role that may get and list ConfigMaps and its
RoleBinding, and a token for the account from the TokenRequest API. As the account (a second
client with that token): listing ConfigMaps works, creating one is upstream's 403, the access
and self-subject reviews say so, and the admin's TokenReview of the token authenticates it.

Run by tests/apiserver_clients.rs with KUBECONFIG pointing at a fresh server. Exits non-zero on
the first failed check.
"""
import json
import os
import sys

from kubernetes import client, config
from kubernetes.client.rest import ApiException

NS = "py-rbac"
SA = "reader"
USER = f"system:serviceaccount:{NS}:{SA}"


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def meta(name):
    return client.V1ObjectMeta(name=name)


# ---------------------------------------------------------------- the admin sets up
config.load_kube_config(os.environ["KUBECONFIG"])
admin = client.ApiClient()
core = client.CoreV1Api(admin)
rbac = client.RbacAuthorizationV1Api(admin)

core.create_namespace(client.V1Namespace(metadata=meta(NS)))
account = core.create_namespaced_service_account(NS, client.V1ServiceAccount(metadata=meta(SA)))
rbac.create_namespaced_role(NS, client.V1Role(
    metadata=meta("configmap-reader"),
    rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["get", "list"])],
))
rbac.create_namespaced_role_binding(NS, client.V1RoleBinding(
    metadata=meta("reader-reads-configmaps"),
    role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="configmap-reader"),
    subjects=[client.RbacV1Subject(kind="ServiceAccount", name=SA, namespace=NS)],
))
core.create_namespaced_config_map(NS, {"metadata": {"name": "seed"}, "data": {"a": "1"}})

request = core.create_namespaced_service_account_token(SA, NS, client.AuthenticationV1TokenRequest(
    spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600),
))
token = request.status.token
check(token and token.count(".") == 2, "TokenRequest returns a JWT")
check(request.status.expiration_timestamp is not None, "TokenRequest returns its expiry")

# ---------------------------------------------------------------- the account's own client
conf = client.Configuration()
conf.host = admin.configuration.host
conf.ssl_ca_cert = admin.configuration.ssl_ca_cert
conf.verify_ssl = True
conf.api_key = {"authorization": token}
conf.api_key_prefix = {"authorization": "Bearer"}
sa_client = client.ApiClient(conf)
sa_core = client.CoreV1Api(sa_client)

# The Role lets it list and get ConfigMaps in its namespace...
names = [cm.metadata.name for cm in sa_core.list_namespaced_config_map(NS).items]
check("seed" in names, f"the account lists ConfigMaps: {names}")
check(sa_core.read_namespaced_config_map("seed", NS).data == {"a": "1"}, "the account reads a ConfigMap")


def forbidden(call, message, what):
    try:
        call()
    except ApiException as e:
        status = json.loads(e.body)
        check(e.status == 403, f"{what}: 403, got {e.status} {e.body}")
        check(status.get("reason") == "Forbidden", f"{what}: reason Forbidden: {status}")
        check(status.get("message") == message, f"{what}: upstream's message, got {status.get('message')!r}")
        return
    check(False, f"{what}: must be forbidden")


# ... and nothing more: creating one, or listing elsewhere, is upstream's 403.
forbidden(
    lambda: sa_core.create_namespaced_config_map(NS, {"metadata": {"name": "nope"}}),
    f'configmaps is forbidden: User "{USER}" cannot create resource "configmaps" in API group "" '
    f'in the namespace "{NS}"',
    "create a ConfigMap",
)
forbidden(
    lambda: sa_core.list_namespaced_config_map("default"),
    f'configmaps is forbidden: User "{USER}" cannot list resource "configmaps" in API group "" '
    f'in the namespace "default"',
    "list ConfigMaps in another namespace",
)
forbidden(
    lambda: sa_core.list_namespaced_secret(NS),
    f'secrets is forbidden: User "{USER}" cannot list resource "secrets" in API group "" '
    f'in the namespace "{NS}"',
    "list Secrets",
)
names = [cm.metadata.name for cm in core.list_namespaced_config_map(NS).items]
check("nope" not in names, f"the forbidden create wrote nothing: {names}")

# SelfSubjectAccessReview: the account asks what it may do.
authz = client.AuthorizationV1Api(sa_client)


def may(verb, resource="configmaps", namespace=NS):
    review = authz.create_self_subject_access_review(client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=client.V1ResourceAttributes(
            namespace=namespace, verb=verb, resource=resource,
        )),
    ))
    return review.status.allowed


for verb, allowed in [("get", True), ("list", True), ("create", False), ("delete", False), ("watch", False)]:
    check(may(verb) is allowed, f"SelfSubjectAccessReview: {verb} configmaps is {allowed}")
check(may("list", namespace="default") is False, "SelfSubjectAccessReview: not in another namespace")
check(may("get", resource="secrets") is False, "SelfSubjectAccessReview: not secrets")

# SelfSubjectReview (kubectl auth whoami): the account's own identity.
me = client.AuthenticationV1Api(sa_client).create_self_subject_review(client.V1SelfSubjectReview())
info = me.status.user_info
check(info.username == USER, f"SelfSubjectReview username: {info.username}")
check(info.uid == account.metadata.uid, f"SelfSubjectReview uid is the account's: {info.uid}")
for group in ["system:serviceaccounts", f"system:serviceaccounts:{NS}", "system:authenticated"]:
    check(group in (info.groups or []), f"SelfSubjectReview groups include {group}: {info.groups}")

# TokenReview by the admin: the token authenticates as the account; a bad one does not.
authn = client.AuthenticationV1Api(admin)
review = authn.create_token_review(client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token)))
check(review.status.authenticated is True, f"TokenReview authenticates the token: {review.status}")
check(review.status.user.username == USER, f"TokenReview username: {review.status.user.username}")
check(review.status.user.uid == account.metadata.uid, "TokenReview uid is the account's")
check(f"system:serviceaccounts:{NS}" in review.status.user.groups, f"TokenReview groups: {review.status.user.groups}")
bad = authn.create_token_review(client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token[:-4] + "AAAA")))
check(not bad.status.authenticated, f"TokenReview refuses a tampered token: {bad.status}")

# The account may not review tokens itself.
try:
    client.AuthenticationV1Api(sa_client).create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token)))
    check(False, "the account must not create TokenReviews")
except ApiException as e:
    check(e.status == 403, f"TokenReview by the account is 403, got {e.status}")

print("python rbac: OK")
