# test_cli.sh — every llmmeter command, its errors and exit codes, and
# segments that must be refused (another user's, corrupt, other layout).
. tests/integration/lib.sh

new_budget B
out=$("$LM" init --budget "$B" --limit 5 --soft 4.5 --window day \
      --model-limit 'claude-*=2.50' --agent-limit planner=1 \
      --token-limit 100000 --request-limit 50 --strict)
expect_eq cli_init_reports_creation "$out" "created budget '$B' (limit \$5.00)"
check cli_segment_created_0600 test "$(stat -c %a /dev/shm/$B)" = 600

"$LM" init --budget "$B" --limit 1 2>"$T/err"; rc=$?
expect_eq cli_init_refuses_overwrite_exit1 "$rc" 1
check cli_init_refuses_overwrite_message grep -q "already exists (use --force" "$T/err"

"$LM" status --budget "$B" --json >"$T/s.json"
expect_eq cli_status_json_limit "$(json_get "$T/s.json" "j['limit_usd'], j['soft_limit_usd'], j['mode'], j['window']['kind']")" "5.00 4.50 strict day"
expect_eq cli_status_json_limits "$(json_get "$T/s.json" "j['token_limit'], j['request_limit'], [(l['kind'],l['pattern'],str(l['limit_usd'])) for l in j['limits']]")" \
  "100000 50 [('model', 'claude-*', '2.50'), ('agent', 'planner', '1.00')]"
check cli_status_json_resets_in_s json_get "$T/s.json" "0 < j['window']['resets_in_s'] <= 86400" >/dev/null
expect_eq cli_status_json_has_fields "$(json_get "$T/s.json" "sorted(set(['budget','limit_usd','soft_limit_usd','spent_usd','reserved_usd','remaining_usd','requests','denied','unmetered','tokens','models','agents','window']) - set(j))")" "[]"

"$LM" set --budget "$B" --limit 7.25 --window none --token-limit none --optimistic
"$LM" status --budget "$B" --json >"$T/s2.json"
expect_eq cli_set_changes_limits_live "$(json_get "$T/s2.json" "j['limit_usd'], j['window']['kind'], j['window']['resets_in_s'], j['token_limit'], j['mode']")" "7.25 none None None optimistic"

"$LM" set --budget "$B" --model-limit 'claude-*=none'
expect_eq cli_set_removes_rule "$("$LM" status --budget "$B" --json | json_get - "[l['pattern'] for l in j['limits']]")" "['planner']"

"$LM" status --budget "$B" --prom >"$T/prom"
check cli_status_prom grep -q "^llmmeter_limit_usd{budget=\"$B\"} 7.25$" "$T/prom"
"$LM" status --budget "$B" >"$T/table"
check cli_status_table grep -q "limit     \$7.25" "$T/table"

"$LM" status --budget "$B" --check >/dev/null
expect_eq cli_status_check_under_limit_exit0 "$?" 0
"$LM" set --budget "$B" --limit 0
"$LM" status --budget "$B" --check >/dev/null
expect_eq cli_status_check_over_limit_exit3 "$?" 3

"$LM" watch --budget "$B" --count 2 --interval 0.05 >"$T/watch"
expect_eq cli_watch_prints_count_frames "$(grep -c '^budget ' "$T/watch")" 2

check cli_list_shows_budget grep -q "^$B " <("$LM" list)
"$LM" reset --budget "$B"
expect_eq cli_reset_keeps_limit "$("$LM" status --budget "$B" --json | json_get - "j['limit_usd'], j['spent_usd']")" "0.00 0.00"

# Bad flags and values: one line on stderr, exit 2, nothing changed.
bad() {
  local name=$1; shift
  "$LM" "$@" >/dev/null 2>"$T/bad"; local rc=$?
  if [ $rc -eq 2 ] && [ "$(wc -l <"$T/bad")" -eq 1 ]; then pass "$name"
  else fail "$name" "rc=$rc, stderr: $(cat "$T/bad")"; fi
}
bad cli_rejects_unknown_command frobnicate
bad cli_rejects_unknown_flag status --budget "$B" --frob
bad cli_rejects_bad_money set --budget "$B" --limit 1.2.3
bad cli_rejects_negative_money set --budget "$B" --limit -5
bad cli_rejects_unknown_window set --budget "$B" --window fortnight
bad cli_rejects_bad_rule set --budget "$B" --model-limit 'claude-*'
bad cli_rejects_bad_count set --budget "$B" --request-limit 1e3
bad cli_rejects_missing_value init --budget "$B" --limit
bad cli_rejects_bad_budget_name status --budget '../etc'
bad cli_run_needs_command run --budget "$B" --

"$LM" --help | grep -q "Exit codes:"; check cli_help_documents_exit_codes test $? -eq 0

# A segment owned by another uid is refused with a clear error.
new_budget F
"$LM" init --budget "$F" --limit 1 >/dev/null
chown 65534 "/dev/shm/$F"
"$LM" status --budget "$F" 2>"$T/foreign"; rc=$?
expect_eq cli_foreign_segment_exit1 "$rc" 1
check cli_foreign_segment_message grep -q "owned by another user" "$T/foreign"
"$LM" init --budget "$F" --force --limit 1 2>/dev/null; rc=$?
expect_eq cli_force_never_replaces_foreign_segment "$rc" 1

# A world-readable segment is refused too (someone could read our spend).
new_budget W
"$LM" init --budget "$W" >/dev/null
chmod 644 "/dev/shm/$W"
"$LM" status --budget "$W" 2>"$T/world"; rc=$?
expect_eq cli_world_readable_segment_refused "$rc" 1

# Corrupt segments: garbage of the right size, wrong size, other version.
new_budget C
"$LM" init --budget "$C" >/dev/null
size=$(stat -c %s "/dev/shm/$C")
head -c "$size" /dev/urandom >"/dev/shm/$C"
"$LM" status --budget "$C" 2>"$T/corrupt"; rc=$?
expect_eq cli_corrupt_segment_exit1 "$rc" 1
check cli_corrupt_segment_message grep -q "corrupt or not an llmmeter budget" "$T/corrupt"
head -c 100 /dev/zero >"/dev/shm/$C"
"$LM" status --budget "$C" 2>"$T/short"; rc=$?
expect_eq cli_truncated_segment_exit1 "$rc" 1
"$LM" init --budget "$C" --force >/dev/null
printf '\xff' | dd of="/dev/shm/$C" bs=1 seek=8 conv=notrunc 2>/dev/null
"$LM" status --budget "$C" 2>"$T/version"; rc=$?
expect_eq cli_other_layout_version_exit1 "$rc" 1
check cli_other_layout_version_message grep -q "another layout version" "$T/version"

"$LM" rm --budget "$B"; expect_eq cli_rm_exit0 "$?" 0
"$LM" rm --budget "$B" 2>/dev/null; expect_eq cli_rm_missing_exit1 "$?" 1

# Money you can read: a limit below a cent never shows as $0.00.
new_budget M
out=$("$LM" init --budget "$M" --limit 0.0004)
check cli_small_limit_reads_exactly grep -q 'limit \$0.0004' <<<"$out"
check cli_small_limit_in_status grep -q '\$0.0004' <("$LM" status --budget "$M")
