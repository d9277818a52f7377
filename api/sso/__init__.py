"""Sign-in with the customer's identity provider (OpenID Connect): the
tenant's provider (``config``), its discovery document and keys
(``provider``), who a person is (``people``), sign-in sessions
(``sessions``) and the browser flow (``flow``). docs/sign-in.md."""
