// PLACEHOLDER: being written (issue 5). The machines part of the lifecycle.
#include "life_internal.hpp"

namespace cdp::life {
namespace {
class MachinesPart final : public Part {
 public:
  using Part::Part;
  std::string_view section() const override { return "machines"; }
  absl::StatusOr<Installer> Prepare(simdjson::dom::element, int64_t) override {
    return absl::UnimplementedError("loyalty: not yet");
  }
  bool Owns(std::string_view kind) const override { return kind == "machines"; }
  absl::Status Drop(std::string_view) override { return absl::NotFoundError("none"); }
  bool Handles(std::string_view) const override { return false; }
  absl::Status Apply(std::string_view, simdjson::dom::object, Ix, int64_t, json::Writer&) override {
    return absl::UnimplementedError("no");
  }
  void OnEvent(Ix, const LifeEvent&) override {}
  void Fire(const Timer&) override {}
  void Merge(Ix, Ix, int64_t) override {}
  void Clear(Ix) override {}
  void AppendPerson(json::Writer&, Ix) const override {}
  void AppendCatalog(json::Writer&) const override {}
  bool StateOf(uint32_t, Ix, Value&) const override { return false; }
  bool empty() const override { return true; }
  uint64_t bytes() const override { return 0; }
};
}  // namespace
std::unique_ptr<Part> MakeMachines(Core& core) { return std::make_unique<MachinesPart>(core); }
}  // namespace cdp::life
