-- luacheck .: lua/ as lua-nginx-module runs it (LuaJIT, with the ngx and bit globals).
std = "ngx_lua"

-- The spec's timed events, one to a line, their data as the spec wrote it.
files["lua/config.lua"] = { max_line_length = false }
