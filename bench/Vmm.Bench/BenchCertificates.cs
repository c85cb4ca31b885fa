using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Vmm.Bench;

/// <summary>
/// A throw-away PKI for the TLS benchmark, in QEMU's tls-creds layout (ca-cert.pem, server-cert.pem, server-key.pem,
/// client-cert.pem, client-key.pem): a CA, a server certificate for localhost and 127.0.0.1, a client `vmm-source`.
/// </summary>
internal static class BenchCertificates
{
    public static string Create(string directory)
    {
        Directory.CreateDirectory(directory);
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=vmm bench CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        using X509Certificate2 ca = caRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        File.WriteAllText(Path.Combine(directory, "ca-cert.pem"), ca.ExportCertificatePem());
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(IPAddress.Loopback);
        Issue(directory, "server", "CN=localhost", ca, caKey, names.Build(), "1.3.6.1.5.5.7.3.1");
        Issue(directory, "client", "CN=vmm-source", ca, caKey, null, "1.3.6.1.5.5.7.3.2");
        return directory;
    }

    private static void Issue(string directory, string name, string subject, X509Certificate2 ca, ECDsa caKey, X509Extension? names, string usage)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(usage)], false));
        if (names is not null)
        {
            request.CertificateExtensions.Add(names);
        }

        using X509Certificate2 certificate = request.Create(ca.SubjectName, X509SignatureGenerator.CreateForECDsa(caKey), DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1), RandomNumberGenerator.GetBytes(8));
        File.WriteAllText(Path.Combine(directory, $"{name}-cert.pem"), certificate.ExportCertificatePem());
        File.WriteAllText(Path.Combine(directory, $"{name}-key.pem"), key.ExportPkcs8PrivateKeyPem());
    }
}
