# tests/mk/lint.mk — `make lint`: the style gate (scripts/lint.sh).
#
#   make lint                  clang-format check, cppcheck, checksrc
#   make lint LINT_FORMAT=0    the same without the clang-format check
#   make lint LINT_CHECKS=cppcheck   only the named checks
#
# clang-format and cppcheck come from scripts/deps.sh. lint-inc-LAYER prints
# a layer's include paths (INC_LAYER in the Makefile), so that cppcheck
# sees each layer as the compiler does.

LINT_FORMAT ?= 1
LINT_CHECKS ?=

.PHONY: lint

lint:
	LINT_FORMAT=$(LINT_FORMAT) bash scripts/lint.sh $(LINT_CHECKS)

lint-inc-%:
	@echo $(INC_$*)
