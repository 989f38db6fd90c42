-- The Lua modules sse-server needs, pinned to the versions it was tested with: Debian 12's
-- lua-cjson 2.1.0, lua-resty-core 0.1.25 and lua-resty-lrucache 0.13, on nginx 1.22.1 with
-- lua-nginx-module 0.10.23 (libnginx-mod-http-lua). OpenResty bundles all of them; next to a
-- plain nginx with lua-nginx-module:
--   luarocks --lua-version 5.1 install --only-deps sse-server-0.1.0-1.rockspec
rockspec_format = "3.0"
package = "sse-server"
version = "0.1.0-1"
source = {
  url = "file://.",
}
description = {
  summary = "Server-Sent Events on OpenResty (nginx + lua-nginx-module)",
  detailed = "Runs as nginx.conf + lua/ with nginx 1.22.1 and lua-nginx-module 0.10.23 (./start.sh).",
}
dependencies = {
  "lua == 5.1", -- LuaJIT, as lua-nginx-module embeds it
  "lua-cjson == 2.1.0",
  "lua-resty-core == 0.1.25",
  "lua-resty-lrucache == 0.13",
}
-- luarocks test: luacheck (settings in .luacheckrc), Debian 12's version.
test_dependencies = {
  "luacheck == 1.1.0",
}
test = {
  type = "command",
  command = "luacheck .",
}
build = {
  -- Nothing to install: nginx loads lua/ from this folder (lua_package_path in nginx.conf).
  type = "none",
}
