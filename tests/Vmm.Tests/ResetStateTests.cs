using Vmm.Accelerator.State;
using Vmm.Loading;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests;

/// <summary>system_reset gives the vCPU the whole real-mode entry state, whatever the guest did to it before.</summary>
public sealed class ResetStateTests
{
    [Fact]
    public void AResetUndoesUnrealModeAndTheGdt()
    {
        string binary = NasmBootSectorTests.Assemble("reset-probe");
        try
        {
            using TestMachine test = TestMachine.Create();
            test.Machine.Load(GuestImage.Load(binary, GuestImage.DefaultLoadAddress, 16 << 20));
            test.Machine.Start();
            test.WaitForSerial(s => s.Contains("ready"), "the guest in unreal mode");
            VcpuRegisters before = test.Machine.WithVcpusPaused(() => test.Machine.Vcpus[0].Vcpu.GetRegisters());
            Assert.Equal(0xFFFF_FFFFu, before.Ds.Limit); // the guest really left unreal mode behind

            test.Machine.Reset();
            test.WaitForSerial(s => s.Contains("again"), "the guest after the reset");
            VcpuRegisters after = test.Machine.WithVcpusPaused(() => test.Machine.Vcpus[0].Vcpu.GetRegisters());

            Assert.Equal(0x6000_0010ul, after.Cr0);
            Assert.Equal(new DescriptorTable(0, 0xFFFF), after.Gdt);
            Assert.Equal(new DescriptorTable(0, 0xFFFF), after.Idt);
            Assert.Equal(0ul, after.Efer);
            foreach (Segment data in new[] { after.Ds, after.Es, after.Ss, after.Fs, after.Gs })
            {
                Assert.Equal(0xFFFFu, data.Limit);
                Assert.False(data.Granularity);
                Assert.False(data.DefaultBig);
                Assert.Equal(0ul, data.Base);
            }

            Assert.Equal(0xFFFFu, after.Cs.Limit);
            Assert.False(after.Cs.DefaultBig);
        }
        finally
        {
            File.Delete(binary);
        }
    }

    [Fact]
    public void AResetWakesAGuestSleepingInHltWithInterruptsOn()
    {
        // uart-irq sleeps in sti; hlt waiting for COM1's interrupt; after the reset it must boot again at once.
        string binary = NasmBootSectorTests.Assemble("uart-irq");
        try
        {
            using TestMachine test = TestMachine.Create();
            test.Machine.Load(GuestImage.Load(binary, GuestImage.DefaultLoadAddress, 16 << 20));
            test.Machine.Start();
            test.WaitForSerial(s => s.Contains("irq echo"), "the guest asleep in HLT");

            test.Machine.Reset();
            test.WaitForSerial(s => s.Split("irq echo").Length == 3, "the guest after the reset");
        }
        finally
        {
            File.Delete(binary);
        }
    }
}
