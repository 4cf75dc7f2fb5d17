# perpsim: `make run` and `make test` are the two commands of the README.
# meson does the building; this file only names the build directories and
# installs what a fresh Debian machine lacks.

RELEASE := build
CHECKED := build-checked
SANITIZED := build-san

.PHONY: all deps build run test bench clean

all: build

deps:
	@./tools/install-deps.sh

# Release build, the one `make run` and the benchmarks use; and the web
# page (web/ -> web/dist with npm), which the server serves at /.
build: deps
	@[ -f $(RELEASE)/build.ninja ] || meson setup $(RELEASE) --buildtype=release
	@ninja -C $(RELEASE)
	@./tools/build-web.sh || echo "perpsim: the web page did not build; the exchange runs without it (/ says so)"

run: build
	./$(RELEASE)/app/perpsim

# Every test twice: optimized with the O(n) invariant checks on, then under
# AddressSanitizer + UndefinedBehaviorSanitizer with the checks on.
test: deps
	@./tools/build-web.sh
	@[ -f $(CHECKED)/build.ninja ] || meson setup $(CHECKED) --buildtype=debugoptimized -Dchecks=true
	@ninja -C $(CHECKED)
	meson test -C $(CHECKED) --print-errorlogs --num-processes 2
	@[ -f $(SANITIZED)/build.ninja ] || meson setup $(SANITIZED) --buildtype=debugoptimized -Dchecks=true \
		-Db_sanitize=address,undefined -Db_lundef=false
	@ninja -C $(SANITIZED)
	ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C $(SANITIZED) --print-errorlogs --num-processes 2 --timeout-multiplier 3
	@./tools/test-summary.py $(CHECKED) $(SANITIZED)

bench: build
	./$(RELEASE)/bench/bench_engine

clean:
	rm -rf $(RELEASE) $(CHECKED) $(SANITIZED)
