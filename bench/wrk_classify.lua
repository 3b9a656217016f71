-- POST /classify with bodies read from the file named by $WRK_BODIES (one JSON body per line),
-- each wrk connection cycling through them from its own offset so concurrent requests differ.
local bodies = {}
local path = os.getenv("WRK_BODIES")
for line in io.lines(path) do
  if #line > 0 then bodies[#bodies + 1] = line end
end
local token = os.getenv("WRK_TOKEN")
local counter = 0
local thread_id = 0

wrk.method = "POST"
wrk.path = os.getenv("WRK_PATH") or "/classify"
wrk.headers["Content-Type"] = "application/json"
if token and #token > 0 then wrk.headers["Authorization"] = "Bearer " .. token end

function setup(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  counter = (thread_id or 0) * 7919
end

function request()
  counter = counter + 1
  local body = bodies[(counter % #bodies) + 1]
  return wrk.format(nil, nil, nil, body)
end
