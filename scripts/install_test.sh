#!/usr/bin/env bash
# Install test of the offline packages. Builds the .deb and the .tar.gz from the `package` preset's build (run
# `cmake --preset package && cmake --build --preset package` first; scripts/setup.sh does), then, without a network
# and without touching this machine's own /:
#   .deb:    checks its Depends against the packages installed here, installs it into a fresh dpkg root, checks the
#            installed files, runs `freekv --version`, `freekv info` on a generated model and `freekv-desk --version`
#            from there (no display), purges it and checks that nothing is left;
#   .tar.gz: unpacks it into a folder whose path has a space, runs the same three commands with LD_LIBRARY_PATH
#            unset, checks that the bundled Qt, sentencepiece, poppler and sqlite are the copies used, starts the app
#            on the offscreen platform, moves the folder and runs it again, and checks that running wrote nothing
#            into it (so deleting the folder removes it all).
# Ends with "install-test: N passed, N failed" and a PASS or FAIL line; the exit code is 0 only on PASS.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build/package
PACKAGES=$BUILD/packages
VOCAB=${FKV_VOCAB:-../shared/vocab/llama-spm.gguf}
VERSION=$(sed -n 's/^project(FreeKVDesk VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)

work=$(mktemp -d "${TMPDIR:-/tmp}/freekv-install-test.XXXXXX")
desk_pid=""
cleanup() {
  [ -n "$desk_pid" ] && kill "$desk_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
passed=0
failed=0

# check DESCRIPTION COMMAND...: runs the command, counts it, shows its output only when it fails.
check() {
  local what=$1
  shift
  if "$@" >"$work/check.log" 2>&1; then
    passed=$((passed + 1))
    echo "ok    $what"
  else
    failed=$((failed + 1))
    echo "FAIL  $what"
    tail -25 "$work/check.log" | sed 's/^/      /'
  fi
}

# Runs a command with no display and no library path of the caller's, printing its output; fails unless the
# output contains the expected text.
expect_output() {
  local expected=$1
  shift
  local out
  out=$(env -u LD_LIBRARY_PATH -u DISPLAY -u WAYLAND_DISPLAY -u QT_QPA_PLATFORM "$@" 2>&1) || {
    echo "$out"
    echo "exit code $? from: $*"
    return 1
  }
  echo "$out"
  grep -qF -- "$expected" <<<"$out" || {
    echo "expected the output to contain: $expected"
    return 1
  }
}

# The files both packages must install, relative to their prefix (/usr in the .deb, the top folder in the .tar.gz).
expected_files() {
  echo bin/freekv bin/freekv-desk share/applications/freekv-desk.desktop
  echo share/icons/hicolor/scalable/apps/freekv-desk.svg
  for size in 16 22 24 32 48 64 128 256; do echo "share/icons/hicolor/${size}x${size}/apps/freekv-desk.png"; done
  echo share/man/man1/freekv.1.gz share/man/man1/freekv-desk.1.gz
  echo share/doc/freekv-desk/user-guide.md share/doc/freekv-desk/troubleshooting.md
}

has_files() {
  local prefix=$1 missing=0 f
  for f in $(expected_files); do
    [ -f "$prefix/$f" ] || { echo "missing: $prefix/$f"; missing=1; }
  done
  return $missing
}

# Each PNG icon is a PNG of its folder's size (bytes 16-23 of a PNG hold its width and height).
icons_have_their_sizes() {
  local prefix=$1 size dims
  for size in 16 22 24 32 48 64 128 256; do
    dims=$(od --endian=big -An -tu4 -j16 -N8 "$prefix/share/icons/hicolor/${size}x${size}/apps/freekv-desk.png" | xargs)
    [ "$dims" = "$size $size" ] || { echo "${size}x${size} icon: the PNG is $dims"; return 1; }
  done
}

# The man pages format without a groff warning.
man_pages_format() {
  local prefix=$1 page
  command -v groff >/dev/null || { echo "groff is not installed"; return 1; }
  for page in freekv freekv-desk; do
    gzip -dc "$prefix/share/man/man1/$page.1.gz" | groff -man -Tutf8 -ww -z 2>"$work/groff.log"
    [ ! -s "$work/groff.log" ] || { cat "$work/groff.log"; return 1; }
  done
}

# Every dependency of the .deb (with its version bound) is met by a package installed on this machine.
depends_are_met() {
  local deps
  deps=$(dpkg-deb --field "$1" Depends)
  echo "Depends: $deps"
  printf 'Source: freekv-desk-install-test\n' >"$work/control"
  dpkg-checkbuilddeps -d "$deps" "$work/control"
}

files_left_in_root() {
  local left
  left=$(find "$1" -mindepth 1 ! -path "$1/var" ! -path "$1/var/lib" ! -path "$1/var/lib/dpkg*")
  [ -z "$left" ] || { echo "left after purge:"; echo "$left"; return 1; }
}

# Neither binary takes any library it bundles from the system, and none is missing.
bundled_libs_used() {
  local top bin line name path
  top=$(readlink -f "$1")
  for bin in freekv freekv-desk; do
    while read -r line; do
      name=${line%% *}
      path=$(sed -n 's/.*=> \(.*\) (0x.*/\1/p' <<<"$line")
      [[ $line == *"not found"* ]] && { echo "$bin: $line"; return 1; }
      [ -n "$path" ] || continue
      path=$(readlink -f "$path")
      if [[ $path != "$top/lib/"* && -e "$top/lib/$name" ]]; then
        echo "$bin: $name comes from $path, not from the bundle"
        return 1
      fi
    done < <(env -u LD_LIBRARY_PATH ldd "$top/bin/$bin")
  done
  for name in libQt6Core.so.6 libQt6Widgets.so.6 libsentencepiece.so.0 libpoppler-cpp.so.0 libsqlite3.so.0; do
    [ -f "$top/lib/$name" ] || { echo "$name is not bundled"; return 1; }
  done
}

# The app starts on the offscreen platform from the bundle: its window creates the library, the platform plugin and
# Qt come from the bundle, and no bundled library is loaded from the system.
desk_starts_offscreen() {
  local top home="$work/home" maps i lib
  top=$(readlink -f "$1")
  mkdir -p "$home/runtime"
  chmod 700 "$home/runtime"
  XDG_DATA_HOME="$home/data" XDG_CONFIG_HOME="$home/config" XDG_RUNTIME_DIR="$home/runtime" \
    env -u LD_LIBRARY_PATH -u DISPLAY "$top/bin/freekv-desk" -platform offscreen >"$work/desk.log" 2>&1 &
  desk_pid=$!
  for i in $(seq 1 100); do
    [ -f "$home/data/freekv-desk/library.db" ] && break
    kill -0 "$desk_pid" 2>/dev/null || break
    sleep 0.2
  done
  # A mapping's path is everything after the fifth field (it may hold spaces).
  maps=$(awk '{ $1 = $2 = $3 = $4 = $5 = ""; sub(/^ +/, "") } /\.so/' "/proc/$desk_pid/maps" 2>/dev/null | sort -u || true)
  kill "$desk_pid" 2>/dev/null || true
  wait "$desk_pid" 2>/dev/null || true
  desk_pid=""
  cat "$work/desk.log"
  [ -f "$home/data/freekv-desk/library.db" ] || { echo "no library.db: the window did not come up"; return 1; }
  grep -qF "$top/lib/qt6/plugins/platforms/libqoffscreen.so" <<<"$maps" || {
    echo "the offscreen platform plugin was not loaded from the bundle"
    return 1
  }
  while read -r lib; do
    [[ $lib == "$top/"* ]] && continue
    [ -e "$top/lib/$(basename "$lib")" ] && { echo "loaded from the system although bundled: $lib"; return 1; }
    for bundled in "$top"/lib/*.so*; do
      [[ $(basename "$lib") == "$(basename "$bundled")".* ]] && { echo "system copy of a bundled library: $lib"; return 1; }
    done
  done <<<"$maps"
  return 0
}

# The folder holds the same paths as when it was unpacked.
unchanged_since() {
  diff "$2" <(cd "$1" && find . | sort)
}

# ---- packages ----
[ -x "$BUILD/app/freekv" ] || { echo "install-test: no package build in $BUILD (cmake --preset package && cmake --build --preset package)"; exit 1; }
echo "building the packages (cpack --preset package)"
rm -rf "$PACKAGES"
cpack --preset package >"$work/cpack.log" 2>&1 || { cat "$work/cpack.log"; echo "FAIL: cpack failed"; exit 1; }
deb=$PACKAGES/freekv-desk_${VERSION}_amd64.deb
tgz=$PACKAGES/freekv-desk-${VERSION}-linux-x86_64.tar.gz
ls -l "$deb" "$tgz"
model=$work/tiny.gguf
check "a test model is written (fkv_make_test_model)" "$BUILD/fkv_make_test_model" "$VOCAB" "$model"

# ---- .deb ----
root=$work/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status"
check ".deb: Depends are met by this machine's packages" depends_are_met "$deb"
# --force-depends: the fresh root's dpkg database knows none of the installed packages; the check above did that.
check ".deb: installs into a fresh root" dpkg --root="$root" --force-depends -i "$deb"
check ".deb: installed files" has_files "$root/usr"
check ".deb: icons have their sizes" icons_have_their_sizes "$root/usr"
check ".deb: man pages format cleanly" man_pages_format "$root/usr"
check ".deb: freekv --version" expect_output "freekv $VERSION" "$root/usr/bin/freekv" --version
check ".deb: freekv info on a model" expect_output "architecture   llama" "$root/usr/bin/freekv" info "$model"
check ".deb: freekv-desk --version without a display" expect_output "freekv-desk $VERSION" "$root/usr/bin/freekv-desk" --version
check ".deb: purges" dpkg --root="$root" --purge freekv-desk
check ".deb: nothing is left after the purge" files_left_in_root "$root"

# ---- .tar.gz ----
mkdir -p "$work/any folder" "$work/moved"
tar -xzf "$tgz" -C "$work/any folder"
top="$work/any folder/freekv-desk-${VERSION}-linux-x86_64"
(cd "$top" && find . | sort) >"$work/tgz-files.txt"
check ".tar.gz: files" has_files "$top"
check ".tar.gz: Qt plugins and qt.conf" test -f "$top/lib/qt6/plugins/platforms/libqxcb.so" -a -f "$top/bin/qt.conf"
check ".tar.gz: licences of the bundled libraries" test -s "$top/share/doc/freekv-desk/third-party/BUNDLED.txt"
check ".tar.gz: the binaries use the bundled libraries" bundled_libs_used "$top"
check ".tar.gz: freekv --version" expect_output "freekv $VERSION" "$top/bin/freekv" --version
check ".tar.gz: freekv info on a model" expect_output "architecture   llama" "$top/bin/freekv" info "$model"
check ".tar.gz: freekv-desk --version without a display" expect_output "freekv-desk $VERSION" "$top/bin/freekv-desk" --version
check ".tar.gz: freekv-desk starts on the offscreen platform" desk_starts_offscreen "$top"
check ".tar.gz: running wrote nothing into the folder" unchanged_since "$top" "$work/tgz-files.txt"
mv "$top" "$work/moved/"
check ".tar.gz: runs after the folder is moved" expect_output "freekv-desk $VERSION" \
  "$work/moved/freekv-desk-${VERSION}-linux-x86_64/bin/freekv-desk" --version
check ".tar.gz: removed by deleting the folder" rm -r "$work/moved/freekv-desk-${VERSION}-linux-x86_64"

echo "install-test: $passed passed, $failed failed"
if [ "$failed" -eq 0 ]; then
  echo "PASS: the .deb and the .tar.gz install, run and uninstall cleanly"
else
  echo "FAIL: $failed install check(s) failed"
  exit 1
fi
