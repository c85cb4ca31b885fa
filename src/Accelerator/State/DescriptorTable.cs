namespace Vmm.Accelerator.State;

/// <summary>GDTR or IDTR: base and limit.</summary>
public record struct DescriptorTable(ulong Base, ushort Limit);
