using System.Runtime.InteropServices;
using Vmm.Accelerator;
using Vmm.Accelerator.State;
using Vmm.Emulator.Memory;
using Vmm.Emulator.Processor;
using Vmm.Ram;

namespace Vmm.Emulator.Tests.Infrastructure;

/// <summary>
/// A software CPU over 2 MiB of real anonymous RAM, in the state the VMM loads a guest in (real mode, CS:IP =
/// 0000:7C00, SS:SP = 0000:7C00, IVT at 0 with limit 0x3FF). <see cref="Run"/> assembles a snippet at 0x7C00 (nasm,
/// `bits 16` and `org 0x7c00` prepended) and runs it until HLT. Bytes written to port 0xE9 are collected.
/// </summary>
public sealed unsafe class CpuHarness : IDisposable, IVcpuIo
{
    public const uint LoadAddress = 0x7C00;

    private readonly RamBlockRegistry registry = new();

    public CpuHarness(ulong ramSize = 2 << 20)
    {
        Ram = RamBlock.CreateAnonymous("ram", 0, ramSize);
        registry.Add(Ram);
        Map = new EmulatorMemoryMap(registry);
        Cpu = new Cpu(Map.Physical, this);
        Cpu.Eip = LoadAddress;
        Cpu.Regs[RegisterIndex.Esp] = LoadAddress;
        Cpu.Idtr = new DescriptorTable(0, 0x3FF);
        Cpu.Gdtr = new DescriptorTable(0, 0xFFFF);
        Cpu.Cr0 = 0x6000_0010;
    }

    public RamBlock Ram { get; }

    public RamBlockRegistry Registry => registry;

    public EmulatorMemoryMap Map { get; }

    public Cpu Cpu { get; }

    /// <summary>Bytes the guest wrote to port 0xE9.</summary>
    public List<byte> DebugOutput { get; } = [];

    /// <summary>Every port write as (port, value).</summary>
    public List<(ushort Port, uint Value)> PortWrites { get; } = [];

    /// <summary>What a port read returns (default 0xFF…).</summary>
    public Func<ushort, int, uint>? PortReadHandler { get; set; }

    public Span<byte> Memory => new((void*)Ram.HostAddress, (int)Ram.UsedLength);

    /// <summary>Assembles and loads <paramref name="source"/> at 0x7C00 (after `bits 16` / `org 0x7c00`).</summary>
    public CpuHarness Load(string source)
    {
        byte[] code = Nasm.Assemble("bits 16\norg 0x7c00\n" + source);
        code.CopyTo(Memory[(int)LoadAddress..]);
        Map.ContentChanged(Ram, 0, Ram.UsedLength);
        return this;
    }

    /// <summary>Runs until HLT (or a triple fault, or <paramref name="timeout"/>), and returns why it stopped.</summary>
    public CpuStop Run(TimeSpan? timeout = null)
    {
        using var timer = new Timer(_ => Cpu.Kick(), null, timeout ?? TimeSpan.FromSeconds(20), Timeout.InfiniteTimeSpan);
        CpuStop stop = Cpu.Run(singleStep: false);
        if (stop == CpuStop.Kicked)
        {
            throw new TimeoutException($"the snippet did not halt (EIP 0x{Cpu.Eip:x})");
        }

        return stop;
    }

    /// <summary>Loads, runs to HLT and checks that it was a HLT.</summary>
    public CpuHarness Execute(string source)
    {
        Load(source);
        CpuStop stop = Run();
        Assert.True(stop == CpuStop.Halted, $"expected HLT, got {stop} at EIP 0x{Cpu.Eip:x}");
        return this;
    }

    public uint Reg(int index) => Cpu.Regs[index];

    public uint Flags => Cpu.Eflags;

    public ushort Read16(uint address) => MemoryMarshal.Read<ushort>(Memory[(int)address..]);

    public uint Read32(uint address) => MemoryMarshal.Read<uint>(Memory[(int)address..]);

    public void PortRead(ushort port, Span<byte> data)
    {
        uint value = PortReadHandler?.Invoke(port, data.Length) ?? 0xFFFF_FFFF;
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (byte)(value >> (8 * i));
        }
    }

    public void PortWrite(ushort port, ReadOnlySpan<byte> data)
    {
        uint value = 0;
        for (int i = 0; i < data.Length; i++)
        {
            value |= (uint)data[i] << (8 * i);
        }

        PortWrites.Add((port, value));
        if (port == 0xE9)
        {
            DebugOutput.AddRange(data.ToArray());
        }
    }

    public void MmioRead(ulong address, Span<byte> data) => data.Fill(0xFF);

    public void MmioWrite(ulong address, ReadOnlySpan<byte> data)
    {
    }

    public void Dispose()
    {
        Cpu.Dispose();
        Map.Dispose();
        registry.Dispose();
    }
}
