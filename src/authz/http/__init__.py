"""AuthZEN Authorization API 1.0 over HTTP: a second front end of the decision service.

The OpenID Foundation's AuthZEN API is the standard HTTP contract for asking a decision point.
This package serves it from the process and the replica that serve gRPC, so both answer the same
decision at the same revision:

* :mod:`~authz.http.documents`: the request and response documents (pydantic), and the 400 that
  names the field of a document that is not one;
* :mod:`~authz.http.mapping`: AuthZEN subjects, actions, resources and contexts to our
  :class:`~authz.decision.Request`, our :class:`~authz.decision.Decision` to an AuthZEN decision;
* :mod:`~authz.http.evaluations`: the batch endpoint's defaults and its three semantics;
* :mod:`~authz.http.search`: the subject, resource and action searches, paged;
* :mod:`~authz.http.app`: the ASGI app (routes, the bearer token, the one error boundary, audit
  and metrics), and :mod:`~authz.http.openapi`, its OpenAPI document;
* :mod:`~authz.http.server`: uvicorn on its own thread, bound as the gRPC server binds (TLS,
  loopback unless ``--insecure``, exclusive unless ``--workers``), stopped with the service;
* :mod:`~authz.http.playground`: with ``--playground``, a web page for policy authors on the same
  app (editors, and Check, Tests, Matrix, Diff, Lint on a scratch engine), its API behind the token.

It is a front end: it imports the decision core and nothing imports it but the server factory.
"""
