#include "ft/replay/savevm.h"

#include "ft/replay/qmp_client.h"

namespace ft::replay {

void SaveVm(const std::shared_ptr<QmpClient>& qmp, const std::string& name, SnapshotRam ram,
            std::chrono::milliseconds timeout, std::function<void(Status)> done) {
  Json capability = {{"capability", "x-ignore-shared"},
                     {"state", ram == SnapshotRam::kInGuestRamFile}};
  Json arguments = {{"capabilities", Json::array({capability})}};
  std::weak_ptr<QmpClient> weak = qmp;
  qmp->Execute("migrate-set-capabilities", std::move(arguments), timeout,
               [weak, name, timeout, done = std::move(done)](Result<Json> set) {
                 if (!set.ok()) return done(set.status());
                 auto monitor = weak.lock();
                 if (!monitor) return done(Aborted("the monitor is gone"));
                 monitor->ExecuteHmp("savevm " + name, timeout, done);
               });
}

void ProbeLoadvmWithoutRam(const std::shared_ptr<QmpClient>& qmp, std::function<void(bool)> done) {
  qmp->Execute("qom-list-properties", {{"typename", "migration"}}, std::chrono::seconds(5),
               [done = std::move(done)](Result<Json> properties) {
                 bool found = false;
                 if (properties.ok() && properties->is_array()) {
                   for (const auto& p : *properties) {
                     if (p.is_object() && p.value("name", "") == "x-ignore-shared") found = true;
                   }
                 }
                 done(found);
               });
}

}  // namespace ft::replay
