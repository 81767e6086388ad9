#include "net/tc.hpp"

#include "out/error.hpp"

#include <bpf/libbpf.h>
#include <cerrno>
#include <linux/pkt_sched.h>
#include <memory>
#include <netlink/netlink.h>
#include <netlink/route/classifier.h>
#include <string>

namespace sonic::net {

namespace {

bpf_tc_hook ingress_hook(int ifindex)
{
	bpf_tc_hook hook{};
	hook.sz = sizeof(hook);
	hook.ifindex = ifindex;
	hook.attach_point = BPF_TC_INGRESS;
	return hook;
}

bpf_tc_opts sonic_opts(int prog_fd)
{
	bpf_tc_opts opts{};
	opts.sz = sizeof(opts);
	opts.handle = kSonicTcHandle;
	opts.priority = kSonicTcPriority;
	opts.prog_fd = prog_fd;
	return opts;
}

Error tc_error(const std::string &op, int err, const std::string &object)
{
	if (err < 0)
		err = -err;
	return errno_error(op, err, object);
}

unsigned count_filters(nl_sock *sk, int ifindex, uint32_t parent)
{
	nl_cache *cache = nullptr;
	if (rtnl_cls_alloc_cache(sk, ifindex, parent, &cache) != 0)
		return 0;
	unsigned n = static_cast<unsigned>(nl_cache_nitems(cache));
	nl_cache_free(cache);
	return n;
}

} // namespace

TcAttach tc_attach_ingress(int ifindex, int prog_fd, const char *ifname)
{
	TcAttach r;
	bpf_tc_hook hook = ingress_hook(ifindex);
	int err = bpf_tc_hook_create(&hook);
	if (err == 0)
		r.made_clsact = true;
	else if (err != -EEXIST)
		throw tc_error("create clsact qdisc", err, ifname);
	bpf_tc_opts opts = sonic_opts(prog_fd);
	opts.flags = BPF_TC_F_REPLACE;
	if ((err = bpf_tc_attach(&hook, &opts)) != 0)
		throw tc_error("attach tc ingress filter", err, ifname);
	r.changed = true;
	return r;
}

uint32_t tc_ingress_prog(int ifindex)
{
	bpf_tc_hook hook = ingress_hook(ifindex);
	bpf_tc_opts opts = sonic_opts(0);
	if (bpf_tc_query(&hook, &opts) != 0)
		return 0;
	return opts.prog_id;
}

bool tc_detach_ingress(int ifindex)
{
	bpf_tc_hook hook = ingress_hook(ifindex);
	bpf_tc_opts opts = sonic_opts(0);
	int err = bpf_tc_detach(&hook, &opts);
	if (err == -ENOENT || err == -EINVAL)
		return false;
	if (err)
		throw tc_error("detach tc ingress filter", err, "ifindex " + std::to_string(ifindex));
	return true;
}

unsigned tc_clsact_filters(int ifindex)
{
	nl_sock *sk = nl_socket_alloc();
	if (!sk)
		throw kernel_error("open netlink socket", "out of memory");
	unsigned n = 0;
	if (nl_connect(sk, NETLINK_ROUTE) == 0)
		n = count_filters(sk, ifindex, TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)) +
		    count_filters(sk, ifindex, TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS));
	nl_socket_free(sk);
	return n;
}

bool tc_remove_clsact(int ifindex)
{
	bpf_tc_hook hook = ingress_hook(ifindex);
	hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
	int err = bpf_tc_hook_destroy(&hook);
	if (err == -ENOENT || err == -EINVAL)
		return false;
	if (err)
		throw tc_error("remove clsact qdisc", err, "ifindex " + std::to_string(ifindex));
	return true;
}

} // namespace sonic::net
