"""The web view of `netctl run` (issue 21): the pool drawn live in a browser at `/`.

It rides on the metrics server (`netctl.service.metrics`), which hands it every request first
(`http.WebRoutes`): the page and its vendored assets (`static/`, cytoscape.js with its
licence: machines running netctl may have no internet), one server-sent event stream
(`events`) that carries the pool's shape (`/status`) and rates (`/stats`) once a second to
every open page, and access (`access`): open on loopback, as /metrics and /status always were;
on any other address TLS (`tls`) and a login checked against the pool's own xapi, so the
operators of the pool are the operators of its network view, as in Xen Orchestra.
"""
