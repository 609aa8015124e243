#!/bin/sh
# Register the custom search attributes riskdesk's workflows set (workflows/search_attributes.py).
# Safe to run again: an attribute that already exists is left as it is.
set -eu
for name in RiskdeskTeam RiskdeskStatus RiskdeskPriority; do
  if temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" | grep -qw "$name"; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" --name "$name" --type Keyword
  fi
done
