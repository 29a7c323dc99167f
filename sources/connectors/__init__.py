"""One module per source kind: a `sources.sync.base.Connector` subclass for each pull or
file source, and for a push-only kind (CI/CD) its `PushSource` beside its receiver in
`sources.receivers`.

Imported by dotted path when used, so a sync of one kind never loads another's client
library (the Kubernetes client, boto3 and hvac are sizeable).
"""

from __future__ import annotations

CONNECTORS: dict[str, str] = {
    "mlflow": "sources.connectors.mlflow.MLflowConnector",
    "otlp": "sources.connectors.otlp.OtlpConnector",
    "kubernetes": "sources.connectors.kubernetes.KubernetesConnector",
    "aws_iam": "sources.connectors.aws_iam.AwsIamConnector",
    "vault": "sources.connectors.vault.VaultConnector",
    "gcp_keys": "sources.connectors.gcp_keys.GcpKeysConnector",
    "github_tokens": "sources.connectors.github_tokens.GithubTokensConnector",
    "cicd": "sources.receivers.cicd.CicdSource",
}
