"""The catalog: the models waule-api serves, which of them a tenant may use, their price rules, and the
pricing engine that turns a request into an estimate and a result into a charge."""
