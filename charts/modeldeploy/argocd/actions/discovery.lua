-- Argo CD resource actions for modeldeploy.io/ModelDeployment, offered as they apply:
-- promote / promote-full / abort / pause during a rollout, resume when paused, retry after a
-- rollback or failure of the spec's revision. Each action writes the request annotation
-- modeldeploy.io/action (the same one `kubectl modeldeploy` writes).
local actions = {}
actions["promote"] = {["disabled"] = true, ["iconClass"] = "fa fa-fw fa-forward"}
actions["promote-full"] = {["disabled"] = true, ["iconClass"] = "fa fa-fw fa-fast-forward"}
actions["abort"] = {["disabled"] = true, ["iconClass"] = "fa fa-fw fa-times-circle"}
actions["pause"] = {["disabled"] = true, ["iconClass"] = "fa fa-fw fa-pause-circle"}
actions["resume"] = {["disabled"] = true, ["iconClass"] = "fa fa-fw fa-play-circle"}
actions["retry"] = {["disabled"] = true, ["iconClass"] = "fa fa-fw fa-redo-alt"}

local status = obj.status
if status == nil then
  return actions
end
local rolling = status.canaryRevision ~= nil and status.canaryRevision ~= ""
if rolling then
  actions["promote"]["disabled"] = false
  actions["promote-full"]["disabled"] = false
  actions["abort"]["disabled"] = false
  if status.pausedAt ~= nil and status.pausedAt ~= "" then
    actions["resume"]["disabled"] = false
  else
    actions["pause"]["disabled"] = false
  end
elseif (status.phase == "RolledBack" or status.phase == "Failed")
    and status.abortedRevision ~= nil and status.abortedRevision ~= "" then
  actions["retry"]["disabled"] = false
end
return actions
