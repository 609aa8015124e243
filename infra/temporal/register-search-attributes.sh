#!/bin/sh
# Register the custom search attributes riskdesk's workflows set (workflows/search_attributes.py)
# in one Temporal namespace. Run by compose's temporal-setup service and by the Kubernetes Job
# temporal-search-attributes (infra/k8s/base/temporal-search-attributes.yaml, which inlines the
# same loop). Safe to run again: an attribute that already exists is left as it is.
set -eu
: "${TEMPORAL_ADDRESS:?set TEMPORAL_ADDRESS (host:port of the Temporal frontend)}"
namespace="${TEMPORAL_NAMESPACE:-default}"
for name in RiskdeskTeam RiskdeskStatus RiskdeskPriority; do
  if temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" --namespace "$namespace" | grep -qw "$name"; then
    echo "search attribute $name exists in $namespace"
  else
    temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" --namespace "$namespace" --name "$name" --type Keyword
  fi
done
