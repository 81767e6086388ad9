// The C++ side of the ABI contract in bpf/sonic_abi.h: layouts the BPF
// programs rely on, checked at compile time.
#include "sonic_abi.h"

#include <cstddef>

static_assert(sizeof(struct sonic_meta) == 40);
static_assert(sizeof(struct sonic_accel_key) == 48);
static_assert(offsetof(struct sonic_accel_key, local_ip) == 8);
static_assert(offsetof(struct sonic_accel_key, remote_ip) == 24);
static_assert(offsetof(struct sonic_accel_key, local_port) == 40);
static_assert(offsetof(struct sonic_accel_key, remote_port) == 42);
static_assert(sizeof(struct sonic_accel_sock) == 24);
static_assert(sizeof(struct sonic_accel_cgroup) == 16);
static_assert(sizeof(struct sonic_accel_ports) == 8192);
static_assert(sizeof(struct sonic_accel_local_key) == 24);
static_assert(sizeof(struct sonic_accel_endpoint) == 32);
static_assert(offsetof(struct sonic_accel_endpoint, addr) == 8);
static_assert(offsetof(struct sonic_accel_endpoint, port) == 24);
static_assert(sizeof(struct sonic_accel_proxy) == 8);
static_assert(sizeof(struct sonic_accel_stats) == 8 * SONIC_ACCEL_NR_COUNTERS);
static_assert(sizeof(struct sonic_accel_stats) % 8 == 0, "per-CPU values are 8-byte aligned");
static_assert(sizeof(struct sonic_accel_iter) == 56);
static_assert(SONIC_ACCEL_NR_COUNTERS == 15, "update kCounterNames in core/bpf/accel.cpp");

static_assert(sizeof(struct sonic_splice_sock) == 40);
static_assert(offsetof(struct sonic_splice_sock, redirected) == 8);
static_assert(offsetof(struct sonic_splice_sock, passed) == 16);
static_assert(offsetof(struct sonic_splice_sock, peer_base) == 32);
static_assert(offsetof(struct sonic_splice_sock, flags) == 36);
static_assert(sizeof(struct sonic_splice_stats) == 8 * SONIC_SPLICE_NR_COUNTERS);
static_assert(SONIC_SPLICE_NR_COUNTERS == 12, "update kCounterNames in core/bpf/splice.cpp");

static_assert(sizeof(struct sonic_steer_port_key) == 24);
static_assert(sizeof(struct sonic_steer_rule) == 136);
static_assert(offsetof(struct sonic_steer_rule, dst) == 24);
static_assert(offsetof(struct sonic_steer_rule, to) == 40);
static_assert(offsetof(struct sonic_steer_rule, ranges) == 72);
static_assert(sizeof(struct sonic_steer_orig_key) == 48);
static_assert(sizeof(struct sonic_steer_orig) == 24);
static_assert(sizeof(struct sonic_steer_dev_key) == 16);
static_assert(sizeof(struct sonic_steer_stats) == 8 * SONIC_STEER_NR_COUNTERS);
static_assert(SONIC_STEER_MAX_RULES <= 64, "a port entry's mask has 64 bits");
static_assert(SONIC_STEER_NR_COUNTERS == 11, "update kCounterNames in core/bpf/steer.cpp");

static_assert(sizeof(struct sonic_fw_lpm_key) == 20);
static_assert(offsetof(struct sonic_fw_lpm_key, addr) == 4);
static_assert(sizeof(struct sonic_fw_rule) == 144);
static_assert(offsetof(struct sonic_fw_rule, action) == 12);
static_assert(offsetof(struct sonic_fw_rule, rate) == 20);
static_assert(offsetof(struct sonic_fw_rule, interval_ns) == 32);
static_assert(offsetof(struct sonic_fw_rule, tolerance_ns) == 40);
static_assert(offsetof(struct sonic_fw_rule, src) == 48);
static_assert(offsetof(struct sonic_fw_rule, dst) == 64);
static_assert(offsetof(struct sonic_fw_rule, ranges) == 80);
static_assert(sizeof(struct sonic_fw_config) == 16);
static_assert(sizeof(struct sonic_fw_port_key) == 4);
static_assert(sizeof(struct sonic_fw_rule_stats) == 32);
static_assert(sizeof(struct sonic_fw_bucket_key) == 24);
static_assert(sizeof(struct sonic_fw_bucket) == 8);
static_assert(sizeof(struct sonic_fw_block) == 96);
static_assert(offsetof(struct sonic_fw_block, prefixlen) == 24);
static_assert(offsetof(struct sonic_fw_block, reason) == 32);
static_assert(sizeof(struct sonic_fw_flow_key) == 44);
static_assert(offsetof(struct sonic_fw_flow_key, sport) == 32);
static_assert(offsetof(struct sonic_fw_flow_key, ifindex) == 36);
static_assert(offsetof(struct sonic_fw_flow_key, proto) == 40);
static_assert(sizeof(struct sonic_fw_flow) == 48);
static_assert(sizeof(struct sonic_fw_stats) == 8 * SONIC_FW_NR_COUNTERS);
static_assert(SONIC_FW_MAX_RULES <= 64, "an index entry's mask has 64 bits");
static_assert(SONIC_FW_NR_COUNTERS == 12, "update kCounterNames in core/bpf/fw.cpp");
