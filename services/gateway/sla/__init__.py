"""SLA configuration: policies (which targets a request gets), previews and policy resolution."""
