-- Argo CD health check for modeldeploy.io/ModelDeployment.
-- Healthy: the stable revision is available and nothing is rolling out.
-- Progressing: a rollout (or the first revision) is under way, or the operator has not yet seen
--   the latest spec (status.observedGeneration < metadata.generation).
-- Suspended: paused by a pause step, by `kubectl modeldeploy pause`, or by inconclusive analysis.
-- Degraded: the new revision was rolled back (RolledBack) or could not start (Failed), or the
--   stable revision has no ready pod (Degraded). A rolled-back revision is not retried until the
--   spec changes or someone runs `kubectl modeldeploy retry`, so Argo CD shows Degraded, not a loop.
-- Written for Argo CD's Lua 5.1 VM (also runs on Lua 5.4).
local hs = {}
local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the modeldeploy operator to reconcile the ModelDeployment"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the modeldeploy operator to observe generation " .. tostring(generation)
  return hs
end

local message = status.message
if message == nil or message == "" then
  message = "phase " .. status.phase
end
local phase = status.phase
if phase == "Succeeded" then
  hs.status = "Healthy"
elseif phase == "Progressing" then
  hs.status = "Progressing"
elseif phase == "Paused" then
  hs.status = "Suspended"
elseif phase == "RolledBack" or phase == "Failed" then
  hs.status = "Degraded"
  if status.rollbackReason ~= nil and status.rollbackReason ~= "" then
    message = phase .. ": " .. status.rollbackReason
  end
elseif phase == "Degraded" then
  hs.status = "Degraded"
else
  hs.status = "Unknown"
  message = "unknown phase " .. tostring(phase)
end
hs.message = message
return hs
