# tests/mk/budget_mem.mk — test_budget runs on two backends (included by
# Makefile).
#
# tests/unit/budget_mem.c is a second, in-memory implementation of the
# budget interface; test_budget.c runs its whole list on the shared-memory
# backend and then on this one. This explicit rule replaces the pattern rule
# for $(BUILD)/tests/test_budget only to compile budget_mem.c in beside it,
# with the same flags and libraries.

$(BUILD)/tests/test_budget: tests/unit/test_budget.c tests/unit/budget_mem.c \
                            tests/unit/budget_mem.h tests/lm_test.h $(CORE_A) \
                            | $(BUILD)/tests
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) $(INC_TESTS) -o $@ \
	  tests/unit/test_budget.c tests/unit/budget_mem.c \
	  $(CORE_A) $(LDFLAGS) $(LIBS_CORE) -lrt
