# tests/mk/crash.mk — the crash test (included by Makefile).
#
# test_crash links its own copy of the budget engine (src/budget/*.c)
# compiled with -DLM_CRASHTEST, in which every LM_CRASH_POINT() counts and
# the process SIGKILLs itself at an armed number (src/budget/crashpoint.h);
# the rest of the core comes from the archive as usual. This explicit rule
# replaces the pattern rule for $(BUILD)/tests/test_crash. `make test` runs
# it reduced (every 3rd point, 40 races); `make crashtest` runs the full
# sweep (every point, 400 races).

CRASH_SRC = $(wildcard src/budget/*.c)

$(BUILD)/tests/test_crash: tests/unit/test_crash.c $(CRASH_SRC) \
                           $(wildcard src/budget/*.h) tests/lm_test.h \
                           $(CORE_A) $(BUILD)/gen/budget_redis_lua.h \
                           | $(BUILD)/tests
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) -DLM_CRASHTEST -DLM_DEBUG_INVARIANTS $(INC_TESTS) $(INC_budget) -o $@ \
	  tests/unit/test_crash.c $(CRASH_SRC) \
	  $(CORE_A) $(LDFLAGS) $(LIBS_LIB) -lrt

.PHONY: crashtest

crashtest: $(BUILD)/tests/test_crash
	$(BUILD)/tests/test_crash --full
