-- Test harness: runs an Argo CD Lua script (health.lua, discovery.lua or action.lua) the way Argo CD
-- does, with the resource in the global `obj`, in an environment holding only what Argo CD's
-- sandbox offers (no io, no require, no os.execute), and prints the script's result as JSON.
-- Usage: lua harness.lua SCRIPT OBJECT_FILE   (OBJECT_FILE: a Lua chunk `return { ... }`)
local script, object_file = arg[1], arg[2]

local function encode(value)
  local kind = type(value)
  if kind == "nil" then
    return "null"
  elseif kind == "boolean" then
    return tostring(value)
  elseif kind == "number" then
    if value ~= value or value == math.huge or value == -math.huge then
      error("cannot encode " .. tostring(value))
    end
    if math.floor(value) == value and math.abs(value) < 1e15 then
      return string.format("%d", value)
    end
    return string.format("%.17g", value)
  elseif kind == "string" then
    local escaped = value:gsub('[%c"\\]', function(c)
      local named = {['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t'}
      return named[c] or string.format("\\u%04x", c:byte())
    end)
    return '"' .. escaped .. '"'
  elseif kind == "table" then
    local count, max = 0, 0
    for k, _ in pairs(value) do
      count = count + 1
      if type(k) == "number" and k > 0 and math.floor(k) == k then
        if k > max then max = k end
      else
        max = -1
      end
    end
    local parts = {}
    if count > 0 and max == count then
      for i = 1, count do parts[#parts + 1] = encode(value[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k, _ in pairs(value) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = encode(k) .. ":" .. encode(value[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  error("cannot encode a " .. kind)
end

local object = assert(loadfile(object_file))()
local env = {
  obj = object,
  os = {date = os.date, time = os.time},
  string = string, table = table, math = math,
  tostring = tostring, tonumber = tonumber, type = type,
  pairs = pairs, ipairs = ipairs, next = next, select = select,
  error = error, pcall = pcall, assert = assert,
}
local chunk
if setfenv then -- Lua 5.1, as Argo CD's VM
  chunk = assert(loadfile(script))
  setfenv(chunk, env)
else
  chunk = assert(loadfile(script, "t", env))
end
io.write(encode(chunk()))
