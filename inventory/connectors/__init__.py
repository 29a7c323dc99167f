"""One module per source kind, each a `inventory.sync.base.Connector` subclass.

Imported by dotted path when used, so a sync of one kind never loads another's client
library (the Kubernetes client, boto3 and hvac are sizeable).
"""

from __future__ import annotations

CONNECTORS: dict[str, str] = {
    "mlflow": "inventory.connectors.mlflow.MLflowConnector",
    "otlp": "inventory.connectors.otlp.OtlpConnector",
    "kubernetes": "inventory.connectors.kubernetes.KubernetesConnector",
    "aws_iam": "inventory.connectors.aws_iam.AwsIamConnector",
    "vault": "inventory.connectors.vault.VaultConnector",
    "gcp_keys": "inventory.connectors.gcp_keys.GcpKeysConnector",
    "github_tokens": "inventory.connectors.github_tokens.GithubTokensConnector",
    "cicd": "inventory.connectors.cicd.CicdConnector",
}
