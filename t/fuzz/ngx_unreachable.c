/*
 * The nginx (and other module) functions that the module files included by
 * the fuzz targets refer to, but that no fuzzed path may call: request
 * flow, configuration, shared memory.  Each aborts with its name, so a
 * harness that strays is noticed at once instead of running on a fake.
 * They are weak: a harness that needs one defines it (fuzz_limit captures
 * the Redis command).  No nginx headers here: only the symbols are
 * needed, not the types.
 */

#include <stdio.h>
#include <stdlib.h>


#define NGX_FUZZ_UNREACHABLE(name)                                            \
    void name(void) __attribute__((weak));                                    \
    void name(void)                                                           \
    {                                                                         \
        fprintf(stderr, "ngx_fuzz: %s reached\n", #name);                     \
        abort();                                                              \
    }


NGX_FUZZ_UNREACHABLE(ngx_array_push)
NGX_FUZZ_UNREACHABLE(ngx_atoi)
NGX_FUZZ_UNREACHABLE(ngx_conf_check_num_bounds)
NGX_FUZZ_UNREACHABLE(ngx_conf_full_name)
NGX_FUZZ_UNREACHABLE(ngx_conf_log_error)
NGX_FUZZ_UNREACHABLE(ngx_conf_set_enum_slot)
NGX_FUZZ_UNREACHABLE(ngx_conf_set_flag_slot)
NGX_FUZZ_UNREACHABLE(ngx_conf_set_msec_slot)
NGX_FUZZ_UNREACHABLE(ngx_conf_set_num_slot)
NGX_FUZZ_UNREACHABLE(ngx_conf_set_size_slot)
NGX_FUZZ_UNREACHABLE(ngx_conf_set_sec_slot)
NGX_FUZZ_UNREACHABLE(ngx_conf_set_str_array_slot)
NGX_FUZZ_UNREACHABLE(ngx_conf_set_str_slot)
NGX_FUZZ_UNREACHABLE(ngx_cpystrn)
NGX_FUZZ_UNREACHABLE(ngx_create_temp_buf)
NGX_FUZZ_UNREACHABLE(ngx_handle_read_event)
NGX_FUZZ_UNREACHABLE(ngx_hex_dump)
NGX_FUZZ_UNREACHABLE(ngx_http_add_variable)
NGX_FUZZ_UNREACHABLE(ngx_http_block_reading)
NGX_FUZZ_UNREACHABLE(ngx_http_commerce_conf_bounds)
NGX_FUZZ_UNREACHABLE(ngx_http_commerce_redis_cache_get)
NGX_FUZZ_UNREACHABLE(ngx_http_commerce_redis_send)
NGX_FUZZ_UNREACHABLE(ngx_http_commerce_redis_start)
NGX_FUZZ_UNREACHABLE(ngx_http_commerce_redis_stop)
NGX_FUZZ_UNREACHABLE(ngx_http_compile_complex_value)
NGX_FUZZ_UNREACHABLE(ngx_http_core_run_phases)
NGX_FUZZ_UNREACHABLE(ngx_http_discard_request_body)
NGX_FUZZ_UNREACHABLE(ngx_http_finalize_request)
NGX_FUZZ_UNREACHABLE(ngx_http_output_filter)
NGX_FUZZ_UNREACHABLE(ngx_http_request_empty_handler)
NGX_FUZZ_UNREACHABLE(ngx_http_send_header)
NGX_FUZZ_UNREACHABLE(ngx_http_test_reading)
NGX_FUZZ_UNREACHABLE(ngx_inet_resolve_host)
NGX_FUZZ_UNREACHABLE(ngx_memn2cmp)
NGX_FUZZ_UNREACHABLE(ngx_parse_addr)
NGX_FUZZ_UNREACHABLE(ngx_parse_size)
NGX_FUZZ_UNREACHABLE(ngx_parse_time)
NGX_FUZZ_UNREACHABLE(ngx_pool_cleanup_add)
NGX_FUZZ_UNREACHABLE(ngx_rbtree_delete)
NGX_FUZZ_UNREACHABLE(ngx_rbtree_insert)
NGX_FUZZ_UNREACHABLE(ngx_sha1_final)
NGX_FUZZ_UNREACHABLE(ngx_sha1_init)
NGX_FUZZ_UNREACHABLE(ngx_sha1_update)
NGX_FUZZ_UNREACHABLE(ngx_shared_memory_add)
NGX_FUZZ_UNREACHABLE(ngx_shmtx_lock)
NGX_FUZZ_UNREACHABLE(ngx_shmtx_unlock)
NGX_FUZZ_UNREACHABLE(ngx_slab_alloc)
NGX_FUZZ_UNREACHABLE(ngx_slab_alloc_locked)
NGX_FUZZ_UNREACHABLE(ngx_slab_free_locked)
NGX_FUZZ_UNREACHABLE(ngx_sock_ntop)
