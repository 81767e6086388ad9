"""sonic.toml files for end-to-end tests, written in one place so the tests
do not each spell the schema (man/sonic-run.8, examples/sonic.toml).
"""
import os

import proxyrun


def q(s):
    return proxyrun.toml_string(s)


class Config:
    """A config with one listener on a free port. Add what a test needs:
    reverse(upstream), tcp_route(upstream), admin(), access_log(path),
    timeouts(...), limits(...), reuse_port()."""

    def __init__(self, workers=1):
        self.listen_port = proxyrun.free_port()
        self.workers = workers
        self.mode = "reverse"
        self.upstreams = []
        self.tcp = None
        self.admin_port = None
        self.log_path = None
        self.timeout = {}
        self.splice = None
        self.reuse = False
        self.limit = {}
        self.path = None

    def reverse(self, *servers):
        self.mode = "reverse"
        self.upstreams = list(servers)
        return self

    def tcp_route(self, server):
        self.tcp = server
        return self

    def admin(self):
        self.admin_port = proxyrun.free_port()
        return self

    def access_log(self, path):
        self.log_path = path
        return self

    def reuse_port(self, on=True):
        """reuse_port = ON on the listener (and the admin listener)."""
        self.reuse = on
        return self

    def limits(self, **values):
        """[limits] keys of sonic-run(8)."""
        self.limit.update(values)
        return self

    def tunnels(self, splice):
        """[tunnels] splice = SPLICE."""
        self.splice = splice
        return self

    def timeouts(self, **seconds):
        """[timeouts] keys of sonic-run(8) (client_header, client_idle,
        upstream_connect, upstream_response, drain, ...) in seconds."""
        self.timeout.update(seconds)
        return self

    def wait_ports(self):
        return [self.admin_port] if self.admin_port else []

    def text(self):
        lines = ["workers = %d" % self.workers]
        if self.tcp:
            lines += ["", "[[upstream]]", "name = \"tcp_target\"", "servers = [%s]" % q(self.tcp),
                      "", "[[route]]", "protocol = \"tcp\"",
                      "listen = %s" % q("127.0.0.1:%d" % self.listen_port), "upstream = \"tcp_target\""]
            if self.reuse:
                lines.append("reuse_port = true")
        else:
            lines += ["", "[[listener]]", "address = %s" % q("127.0.0.1:%d" % self.listen_port),
                      "mode = %s" % q(self.mode)]
            if self.reuse:
                lines.append("reuse_port = true")
            if self.upstreams:
                lines += ["", "[[upstream]]", "name = \"origin\"",
                          "servers = [%s]" % ", ".join(q(s) for s in self.upstreams),
                          "", "[[route]]", "path = \"/\"", "upstream = \"origin\""]
        if self.timeout:
            lines += ["", "[timeouts]"] + ["%s = %s" % (k, v) for k, v in sorted(self.timeout.items())]
        if self.limit:
            lines += ["", "[limits]"] + ["%s = %s" % (k, v) for k, v in sorted(self.limit.items())]
        if self.splice is not None:
            lines += ["", "[tunnels]", "splice = %s" % ("true" if self.splice else "false")]
        if self.log_path:
            lines += ["", "[access_log]", "path = %s" % q(self.log_path)]
        if self.admin_port:
            lines += ["", "[admin]", "listen = %s" % q("127.0.0.1:%d" % self.admin_port)]
            if self.reuse:
                lines.append("reuse_port = true")
        return "\n".join(lines) + "\n"

    def write(self, directory):
        if directory is None:
            directory = os.path.dirname(self.path)
        if self.path is None:
            self.path = os.path.join(directory, "sonic-%d.toml" % self.listen_port)
        with open(self.path + ".tmp", "w") as f:
            f.write(self.text())
        os.replace(self.path + ".tmp", self.path)
        return self.path
